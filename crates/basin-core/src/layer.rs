use std::fmt;
use std::str::FromStr;

use crate::CoreError;

/// The refinement stage a dataset sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// A faithful copy of a source system.
    Source,
    /// Cleaned and harmonised data.
    Prepared,
    /// Joined, aggregated and enriched data.
    Semantic,
}

impl Layer {
    /// The lower-case name used in the catalog, the CLI and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Source => "source",
            Layer::Prepared => "prepared",
            Layer::Semantic => "semantic",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "source" => Ok(Layer::Source),
            "prepared" => Ok(Layer::Prepared),
            "semantic" => Ok(Layer::Semantic),
            other => Err(CoreError::InvalidLayer(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for l in [Layer::Source, Layer::Prepared, Layer::Semantic] {
            assert_eq!(l.as_str().parse::<Layer>().unwrap(), l);
        }
        assert!(
            "gold"
                .parse::<Layer>()
                .unwrap_err()
                .to_string()
                .contains("source, prepared, semantic")
        );
    }
}
