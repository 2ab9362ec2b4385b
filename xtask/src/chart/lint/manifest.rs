//! Reading rendered manifests: every YAML document of a render as a JSON value.

use std::path::Path;

use anyhow::{Context, Result, bail};
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;

/// Every YAML document of a rendered manifest, as JSON values (empty documents dropped).
pub fn load_documents(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs = Yaml::load_from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    docs.iter()
        .map(yaml_to_json)
        .filter(|d| !matches!(d, Ok(Value::Null)))
        .collect::<Result<_>>()
        .with_context(|| format!("reading {}", path.display()))
}

/// A parsed YAML node as JSON (mapping keys become strings).
pub fn yaml_to_json(node: &Yaml) -> Result<Value> {
    Ok(match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) | Yaml::Representation(s, _, _) => Value::from(s.as_ref()),
        Yaml::Sequence(items) => {
            Value::Array(items.iter().map(yaml_to_json).collect::<Result<_>>()?)
        }
        Yaml::Mapping(map) => {
            let mut object = serde_json::Map::new();
            for (k, v) in map {
                let key = match yaml_to_json(k)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                object.insert(key, yaml_to_json(v)?);
            }
            Value::Object(object)
        }
        Yaml::Tagged(_, inner) => yaml_to_json(inner)?,
        Yaml::Alias(_) | Yaml::BadValue => bail!("unsupported YAML node (alias or bad value)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_convert_to_json() {
        let docs = Yaml::load_from_str("a: 1\nb: [true, x, 1.5]\n---\n").unwrap();
        assert_eq!(
            yaml_to_json(&docs[0]).unwrap(),
            serde_json::json!({"a": 1, "b": [true, "x", 1.5]})
        );
    }
}
