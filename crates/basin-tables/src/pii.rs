//! Encryption of PII columns on the way in, and the functions governed scans use on the way out.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, FieldRef};
use basin_keys::{HubKey, encrypted_schema};
use datafusion::common::Column;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, Expr};
use futures::StreamExt;

/// accordingly: those fields become Utf8). If `columns` is empty, returns the stream unchanged.
pub fn encrypt_stream(
    input: SendableRecordBatchStream,
    key: HubKey,
    columns: Vec<String>,
) -> SendableRecordBatchStream {
    let input_schema = input.schema();
    if columns.is_empty()
        || !input_schema
            .fields()
            .iter()
            .any(|f| columns.iter().any(|c| c == f.name()))
    {
        return input;
    }
    let schema = encrypted_schema(&input_schema, &columns);
    let out_schema = schema.clone();
    let stream = input.map(move |batch| {
        let batch = batch?;
        key.encrypt_batch_into(&batch, &columns, out_schema.clone())
            .map_err(|e| DataFusionError::External(Box::new(e)))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// What a PII function does to each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Every value to a token of the current key version ([`HubKey::encrypt_array`]).
    Encrypt,
    /// Tokens to clear text; anything else is an error ([`HubKey::decrypt_array`]).
    Decrypt,
    /// Tokens to the current key version ([`HubKey::reencrypt_array`]).
    Reencrypt,
    /// Old versions, for readers without UNMASK ([`HubKey::shield_array`]).
    Shield,
    /// Old versions, for readers with UNMASK ([`HubKey::reveal_array`]).
    Reveal,
}

/// `basin_encrypt` / `basin_decrypt` bound to one hub key.
#[derive(Debug)]
struct CryptoUdf {
    key: HubKey,
    direction: Direction,
    signature: Signature,
}

impl PartialEq for CryptoUdf {
    fn eq(&self, other: &Self) -> bool {
        self.direction == other.direction
            && self.key.hub() == other.key.hub()
            && self.key.version() == other.key.version()
            && self.key.fingerprint() == other.key.fingerprint()
    }
}

impl Eq for CryptoUdf {}

impl Hash for CryptoUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.direction.hash(state);
        self.key.hub().hash(state);
        self.key.version().hash(state);
    }
}

impl ScalarUDFImpl for CryptoUdf {
    fn name(&self) -> &str {
        match self.direction {
            Direction::Encrypt => "basin_encrypt",
            Direction::Decrypt => "basin_decrypt",
            Direction::Reencrypt => "basin_reencrypt",
            Direction::Shield => "basin_shield",
            Direction::Reveal => "basin_reveal",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, nullable)))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Plan(format!(
                "{} takes exactly one argument, got {}",
                self.name(),
                args.args.len()
            )));
        };
        let apply = |array: &ArrayRef| -> datafusion::error::Result<ArrayRef> {
            match self.direction {
                Direction::Encrypt => self.key.encrypt_array(array),
                Direction::Decrypt => self.key.decrypt_array(array),
                Direction::Reencrypt => self.key.reencrypt_array(array),
                Direction::Shield => self.key.shield_array(array),
                Direction::Reveal => self.key.reveal_array(array),
            }
            .map_err(|e| DataFusionError::External(Box::new(e)))
        };
        match arg {
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(apply(array)?)),
            ColumnarValue::Scalar(scalar) => {
                let out = apply(&scalar.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            }
        }
    }
}

/// The function that applies `direction` with `key` to a text column, as used by the write path
/// (encryption) and by governed scans (decryption). Not callable from user SQL: it is only
/// ever placed in plans by Basin itself.
pub fn udf(key: HubKey, direction: Direction) -> ScalarUDF {
    let signature = match direction {
        Direction::Encrypt => Signature::any(1, Volatility::Immutable),
        _ => Signature::string(1, Volatility::Immutable),
    };
    ScalarUDF::new_from_impl(CryptoUdf {
        key,
        direction,
        signature,
    })
}

/// The names of a table's PII columns (tagged `pii` or `<key>=pii`, or text columns of a table
/// or dataset so tagged: [`basin_catalog::Table::is_pii`]).
pub fn columns(table: &basin_catalog::Table) -> Vec<String> {
    table.pii_columns()
}

/// The text columns of `schema` that are not among `known` columns, when new columns inherit
/// `pii` (`inherited`: the tags a new column inherits from its table and dataset): a write that
/// adds them encrypts them, as the catalog will list them as PII.
pub fn new_text_columns(
    inherited: &[String],
    known: &[basin_catalog::Column],
    schema: &arrow::datatypes::Schema,
) -> Vec<String> {
    if !basin_catalog::access::is_pii(inherited) {
        return Vec::new();
    }
    schema
        .fields()
        .iter()
        .filter(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) && !known.iter().any(|c| c.name == *f.name())
        })
        .map(|f| f.name().clone())
        .collect()
}

/// `frame` with its columns named like the `pii` columns encrypted under `key`, as the write
/// path stores them (encryption is deterministic, so conditions on them compare tokens).
pub fn encrypt_frame(
    frame: DataFrame,
    key: &HubKey,
    pii: &[String],
) -> datafusion::error::Result<DataFrame> {
    let encrypt = udf(key.clone(), Direction::Encrypt);
    let exprs: Vec<Expr> = frame
        .schema()
        .iter()
        .map(|(q, f)| {
            let c = Expr::Column(Column::new(q.cloned(), f.name()));
            if pii.contains(f.name()) {
                encrypt.call(vec![c]).alias(f.name())
            } else {
                c
            }
        })
        .collect();
    frame.select(exprs)
}
