//! Checked integer arithmetic, as in PostgreSQL: an overflow is an error, never a wrapped number.
//!
//! DataFusion's `+`, `-`, `*` and unary `-` wrap on integer overflow, and its `sum` of BIGINT
//! wraps too. [`CheckedArithmetic`], an analyzer rule that runs before type coercion, rewrites
//! integer `+ - *` and unary `-` into calls of the checked kernels below (arrow's `add`, `sub`,
//! `mul`, `neg`, which fail on overflow), and makes `sum` of a BIGINT column add exact
//! DECIMAL(38,0) values (PostgreSQL's `sum(bigint)` returns `numeric` for the same reason).
//! Every query, every `INSERT … SELECT` and every governed scan is planned by a session that has
//! the rule. (`UPDATE … SET` expressions are planned by the write path: see `dml::update`.)

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Datum};
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ExprSchema, Result, ScalarValue, exec_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility, WindowFunctionDefinition, cast,
};
use datafusion::optimizer::AnalyzerRule;

/// The kernel a checked function applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
    Neg,
}

impl Op {
    fn of(op: Operator) -> Option<Op> {
        match op {
            Operator::Plus => Some(Op::Add),
            Operator::Minus => Some(Op::Sub),
            Operator::Multiply => Some(Op::Mul),
            _ => None,
        }
    }
    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub | Op::Neg => "-",
            Op::Mul => "*",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Op::Add => "basin_checked_add",
            Op::Sub => "basin_checked_sub",
            Op::Mul => "basin_checked_mul",
            Op::Neg => "basin_checked_neg",
        }
    }
}

/// An integer operation that fails on overflow instead of wrapping.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    op: Op,
    signature: Signature,
}

fn checked(op: Op) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Checked {
        op,
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer()
}

/// The SQL name of an integer type, for error messages.
fn sql_type(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 => "TINYINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "BIGINT",
        DataType::UInt8 => "TINYINT UNSIGNED",
        DataType::UInt16 => "SMALLINT UNSIGNED",
        DataType::UInt32 => "INTEGER UNSIGNED",
        DataType::UInt64 => "BIGINT UNSIGNED",
        _ => "integer",
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.op.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    /// Named as the operator it replaces, so that result columns keep their names.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(match args {
            [a] => format!("(- {})", a.schema_name()),
            [a, b] => format!(
                "{} {} {}",
                a.schema_name(),
                self.op.symbol(),
                b.schema_name()
            ),
            _ => self.op.name().to_string(),
        })
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [a] if is_integer(a) => Ok(vec![a.clone()]),
            [a, b] if is_integer(a) && is_integer(b) => {
                let operator = match self.op {
                    Op::Add => Operator::Plus,
                    Op::Sub | Op::Neg => Operator::Minus,
                    Op::Mul => Operator::Multiply,
                };
                let (l, r) = BinaryTypeCoercer::new(a, &operator, b).get_input_types()?;
                Ok(vec![l, r])
            }
            _ => exec_err!("{} takes integers, not {arg_types:?}", self.op.name()),
        }
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let datums: Vec<Box<dyn Datum>> = args
            .args
            .iter()
            .map(|a| -> Result<Box<dyn Datum>> {
                Ok(match a {
                    ColumnarValue::Array(a) => Box::new(a.clone()),
                    ColumnarValue::Scalar(s) => Box::new(s.to_scalar()?),
                })
            })
            .collect::<Result<_>>()?;
        use arrow::compute::kernels::numeric;
        let result: std::result::Result<ArrayRef, _> = match (self.op, datums.as_slice()) {
            (Op::Neg, [a]) => numeric::neg(a.get().0),
            (Op::Add, [a, b]) => numeric::add(a.as_ref(), b.as_ref()),
            (Op::Sub, [a, b]) => numeric::sub(a.as_ref(), b.as_ref()),
            (Op::Mul, [a, b]) => numeric::mul(a.as_ref(), b.as_ref()),
            _ => return exec_err!("{} called with {} arguments", self.op.name(), datums.len()),
        };
        let array = result.map_err(|e| overflow(self.op, &args.args, e))?;
        Ok(if all_scalar && array.len() == 1 {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

/// PostgreSQL's "bigint out of range", with the operation (arrow names the operands).
fn overflow(op: Op, args: &[ColumnarValue], e: arrow::error::ArrowError) -> DataFusionError {
    let t = args[0].data_type();
    let detail = e.to_string();
    let operation = detail
        .rsplit_once("Overflow happened on: ")
        .map(|(_, o)| o.to_string())
        .unwrap_or_else(|| match op {
            Op::Neg => "negation".into(),
            _ => format!("'{}'", op.symbol()),
        });
    DataFusionError::Execution(format!(
        "{} out of range: {operation} does not fit in {}; cast an operand to DECIMAL(38, 0) (exact) or DOUBLE for a wider range",
        sql_type(&t).to_lowercase(),
        sql_type(&t),
    ))
}

/// The analyzer rule that swaps wrapping integer arithmetic for checked arithmetic.
#[derive(Debug)]
pub(crate) struct CheckedArithmetic {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
    neg: Arc<ScalarUDF>,
}

impl CheckedArithmetic {
    pub(crate) fn new() -> Self {
        CheckedArithmetic {
            add: checked(Op::Add),
            sub: checked(Op::Sub),
            mul: checked(Op::Mul),
            neg: checked(Op::Neg),
        }
    }

    fn udf(&self, op: Op) -> &Arc<ScalarUDF> {
        match op {
            Op::Add => &self.add,
            Op::Sub => &self.sub,
            Op::Mul => &self.mul,
            Op::Neg => &self.neg,
        }
    }

    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let integer = |e: &Expr| {
            e.get_type(schema as &dyn ExprSchema)
                .map(|t| is_integer(&t))
                .unwrap_or(false)
        };
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if Op::of(op).is_some() && integer(&left) && integer(&right) =>
            {
                let udf = self.udf(Op::of(op).expect("checked above")).clone();
                Ok(Transformed::yes(Expr::ScalarFunction(
                    datafusion::logical_expr::expr::ScalarFunction::new_udf(
                        udf,
                        vec![*left, *right],
                    ),
                )))
            }
            Expr::Negative(inner) if integer(&inner) => Ok(Transformed::yes(Expr::ScalarFunction(
                datafusion::logical_expr::expr::ScalarFunction::new_udf(
                    self.neg.clone(),
                    vec![*inner],
                ),
            ))),
            Expr::AggregateFunction(mut f) if f.func.name() == "sum" => {
                let changed = exact_sum_args(&mut f.params.args, schema);
                Ok(Transformed::new_transformed(
                    Expr::AggregateFunction(AggregateFunction { ..f }),
                    changed,
                ))
            }
            Expr::WindowFunction(mut w) if matches!(&w.fun, WindowFunctionDefinition::AggregateUDF(u) if u.name() == "sum") =>
            {
                let changed = exact_sum_args(&mut w.params.args, schema);
                let w: Box<WindowFunction> = w;
                Ok(Transformed::new_transformed(
                    Expr::WindowFunction(w),
                    changed,
                ))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

/// `sum(bigint)` adds DECIMAL(38, 0) values: exact where BIGINT would overflow.
fn exact_sum_args(args: &mut [Expr], schema: &DFSchema) -> bool {
    let [arg] = args else { return false };
    match arg.get_type(schema as &dyn ExprSchema) {
        Ok(DataType::Int64 | DataType::UInt64) => {
            *arg = cast(arg.clone(), DataType::Decimal128(38, 0));
            true
        }
        _ => false,
    }
}

impl AnalyzerRule for CheckedArithmetic {
    fn name(&self) -> &str {
        "basin_checked_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _options: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let mut schema = merge_schema(&plan.inputs());
            if let LogicalPlan::TableScan(ts) = &plan {
                schema.merge(&DFSchema::try_from_qualified_schema(
                    ts.table_name.clone(),
                    &ts.source.schema(),
                )?);
            }
            let names = NamePreserver::new(&plan);
            let rewritten = plan.map_expressions(|expr| {
                let name = names.save(&expr);
                Ok(expr
                    .transform_up(|e| self.rewrite(e, &schema))?
                    .update_data(|e| name.restore(e)))
            })?;
            // A sum's type may have changed: the plans above must see it.
            if rewritten.transformed {
                rewritten.map_data(|p| p.recompute_schema())
            } else {
                Ok(rewritten)
            }
        })
        .map(|t| t.data)
    }
}

/// The session's analyzer rules with [`CheckedArithmetic`] before type coercion, and
/// [`basin_lake::MultisetSetOperations`] (`EXCEPT ALL`, `INTERSECT ALL`) first.
pub(crate) fn analyzer_rules(
    defaults: &[Arc<dyn AnalyzerRule + Send + Sync>],
) -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules = Vec::with_capacity(defaults.len() + 1);
    let mut added = false;
    for rule in defaults {
        if !added && rule.name() == "type_coercion" {
            rules.push(Arc::new(CheckedArithmetic::new()) as Arc<dyn AnalyzerRule + Send + Sync>);
            added = true;
        }
        rules.push(rule.clone());
    }
    if !added {
        rules.insert(0, Arc::new(CheckedArithmetic::new()));
    }
    basin_lake::with_multiset_rule(&rules)
}
