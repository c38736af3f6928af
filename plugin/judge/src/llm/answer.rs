//! The answer every provider must give, its JSON Schemas in each provider's dialect, and the
//! strict parser that checks an answer against it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Most reasons an answer may give, and the longest one; longer answers are rejected rather
/// than trimmed, since they are outside the schema.
pub const MAX_REASONS: usize = 10;
pub const MAX_REASON_CHARS: usize = 1000;

/// A model's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub promote: bool,
    /// 0-100.
    pub confidence: u8,
    pub reasons: Vec<String>,
}

/// Why an answer does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("answer is not valid JSON for the schema: {0}")]
    Json(String),
    #[error("confidence {0} is outside 0-100")]
    Confidence(i64),
    #[error(
        "reasons must hold 1 to {MAX_REASONS} non-empty strings of at most {MAX_REASON_CHARS} characters"
    )]
    Reasons,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    promote: bool,
    confidence: i64,
    reasons: Vec<String>,
}

/// Parses the model's text. It must be exactly one JSON object with exactly the schema's
/// fields; nothing is salvaged from prose around it.
pub fn parse(text: &str) -> Result<Answer, AnswerError> {
    let raw: Raw =
        serde_json::from_str(text.trim()).map_err(|e| AnswerError::Json(e.to_string()))?;
    if !(0..=100).contains(&raw.confidence) {
        return Err(AnswerError::Confidence(raw.confidence));
    }
    if raw.reasons.is_empty()
        || raw.reasons.len() > MAX_REASONS
        || raw
            .reasons
            .iter()
            .any(|r| r.trim().is_empty() || r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(AnswerError::Reasons);
    }
    Ok(Answer {
        promote: raw.promote,
        confidence: raw.confidence as u8,
        reasons: raw.reasons,
    })
}

/// The schema as standard JSON Schema for OpenAI `json_schema` strict mode: every property
/// required and `additionalProperties: false`, as strict mode demands. Ranges strict mode may
/// not enforce are checked again by [`parse`].
pub fn json_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "promote": {
                "type": "boolean",
                "description": "true only if the canary is at least as good as stable"
            },
            "confidence": {
                "type": "integer",
                "description": "confidence in the decision, 0 to 100"
            },
            "reasons": {
                "type": "array",
                "description": "1 to 10 short reasons citing the numbers",
                "items": { "type": "string" }
            }
        },
        "required": ["promote", "confidence", "reasons"],
        "additionalProperties": false
    })
}

/// The schema in Gemini's OpenAPI-subset `responseSchema` dialect (upper-case types,
/// `propertyOrdering`).
pub fn gemini_schema() -> Value {
    json!({
        "type": "OBJECT",
        "properties": {
            "promote": { "type": "BOOLEAN" },
            "confidence": { "type": "INTEGER", "minimum": 0, "maximum": 100 },
            "reasons": {
                "type": "ARRAY",
                "items": { "type": "STRING" },
                "minItems": 1,
                "maxItems": MAX_REASONS
            }
        },
        "required": ["promote", "confidence", "reasons"],
        "propertyOrdering": ["promote", "confidence", "reasons"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exact_schema() {
        let a =
            parse(r#" {"promote": false, "confidence": 90, "reasons": ["p99 doubled"]} "#).unwrap();
        assert_eq!(
            a,
            Answer {
                promote: false,
                confidence: 90,
                reasons: vec!["p99 doubled".into()]
            }
        );
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            r#"{"promote": true, "confidence": 101, "reasons": ["x"]}"#,
            r#"{"promote": true, "confidence": -1, "reasons": ["x"]}"#,
            r#"{"promote": true, "confidence": 50, "reasons": []}"#,
            r#"{"promote": true, "confidence": 50, "reasons": [""]}"#,
            r#"{"promote": "yes", "confidence": 50, "reasons": ["x"]}"#,
            r#"{"promote": true, "confidence": 50.5, "reasons": ["x"]}"#,
            r#"{"promote": true, "confidence": 50, "reasons": ["x"], "extra": 1}"#,
            r#"{"promote": true, "reasons": ["x"]}"#,
            r#"Sure! {"promote": true, "confidence": 50, "reasons": ["x"]}"#,
            "",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad}");
        }
        let many = serde_json::json!({"promote": true, "confidence": 5, "reasons": vec!["r"; 11]});
        assert_eq!(parse(&many.to_string()), Err(AnswerError::Reasons));
    }

    #[test]
    fn strict_schema_lists_every_property_as_required() {
        let s = json_schema();
        let props: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(props.len(), required.len());
        assert_eq!(s["additionalProperties"], false);
    }
}
