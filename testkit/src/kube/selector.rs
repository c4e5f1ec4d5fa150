//! Label and field selectors of list, watch and deletecollection requests, parsed with the
//! grammar and checks of `k8s.io/apimachinery/pkg/labels` (`=`, `==`, `!=`, `in`, `notin`,
//! `key`, `!key`, comma = AND) and matched against objects.

use serde_json::Value;

/// Why a selector does not parse; the text is the real server's 400 message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        match self.operator {
            Operator::Equals | Operator::In => {
                value.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::NotEquals | Operator::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|x| x == v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Identifier(String),
    Equals,
    DoubleEquals,
    NotEquals,
    Not,
    In,
    NotIn,
    OpenParen,
    CloseParen,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Identifier(s) => s.clone(),
            Token::Equals => "=".into(),
            Token::DoubleEquals => "==".into(),
            Token::NotEquals => "!=".into(),
            Token::Not => "!".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::OpenParen => "(".into(),
            Token::CloseParen => ")".into(),
            Token::Comma => ",".into(),
        }
    }
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '=' if next == Some('=') => {
                tokens.push(Token::DoubleEquals);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Equals);
                i += 1;
            }
            '!' if next == Some('=') => {
                tokens.push(Token::NotEquals);
                i += 2;
            }
            '!' => {
                tokens.push(Token::Not);
                i += 1;
            }
            '(' => {
                tokens.push(Token::OpenParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::CloseParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"=!(),".contains(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Identifier(word),
                });
            }
        }
    }
    tokens
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// The checks of `validation.IsQualifiedName` on a label key.
fn validate_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let bad_name = name.is_empty()
        || name.len() > 63
        || !name.chars().all(is_name_char)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let bad_prefix = prefix.is_some_and(|p| {
        p.is_empty()
            || p.len() > 253
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    });
    if bad_name || bad_prefix {
        return Err(SelectorError(format!(
            "unable to parse requirement: <nil>: Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )));
    }
    Ok(())
}

/// The checks of `validation.IsValidLabelValue`.
fn validate_value(value: &str) -> Result<(), SelectorError> {
    let valid = value.is_empty()
        || (value.len() <= 63
            && value.chars().all(is_name_char)
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if valid {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "unable to parse requirement: values[0][{value}]: Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )))
    }
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn unexpected(found: Option<Token>, expected: &str) -> SelectorError {
        let found = found.map_or_else(|| "EOS".to_string(), |t| t.describe());
        SelectorError(format!("found '{found}', expected: {expected}"))
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = self.peek() == Some(&Token::Not);
        if negated {
            self.next();
        }
        let key = match self.next() {
            Some(Token::Identifier(key)) => key,
            other => return Err(Self::unexpected(other, "identifier")),
        };
        validate_key(&key)?;
        if negated {
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: Vec::new(),
            });
        }
        let operator = match self.peek() {
            None | Some(Token::Comma) => {
                return Ok(Requirement {
                    key,
                    operator: Operator::Exists,
                    values: Vec::new(),
                });
            }
            Some(Token::Equals | Token::DoubleEquals) => Operator::Equals,
            Some(Token::NotEquals) => Operator::NotEquals,
            Some(Token::In) => Operator::In,
            Some(Token::NotIn) => Operator::NotIn,
            Some(_) => {
                return Err(Self::unexpected(self.next(), "=, !=, ==, in, notin"));
            }
        };
        self.next();
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => match self.peek() {
                Some(Token::Identifier(_)) => match self.next() {
                    Some(Token::Identifier(value)) => vec![value],
                    _ => unreachable!("peeked an identifier"),
                },
                None | Some(Token::Comma) => vec![String::new()],
                Some(_) => return Err(Self::unexpected(self.next(), "identifier")),
            },
        };
        for value in &values {
            validate_value(value)?;
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::OpenParen) => {}
            other => return Err(Self::unexpected(other, "'('")),
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Token::Identifier(value)) if expect_value => {
                    values.push(value);
                    expect_value = false;
                }
                Some(Token::Comma) if !expect_value => expect_value = true,
                Some(Token::Comma) => values.push(String::new()),
                Some(Token::CloseParen) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                other => return Err(Self::unexpected(other, "',', ')' or identifier")),
            }
        }
    }
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            tokens: tokenize(text),
            position: 0,
        };
        let mut requirements = Vec::new();
        if parser.peek().is_none() {
            return Ok(LabelSelector { requirements });
        }
        loop {
            requirements.push(parser.requirement()?);
            match parser.next() {
                None => break,
                Some(Token::Comma) => continue,
                other => return Err(Parser::unexpected(other, "','")),
            }
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object["metadata"]["labels"].as_object();
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// A field selector over `metadata.name` and `metadata.namespace` (all the real server supports
/// for custom resources).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(SelectorError(format!("field label not supported: {field}")));
            }
            terms.push((field.to_string(), equal, value.to_string()));
        }
        Ok(FieldSelector { terms })
    }

    /// The name this selector pins (`metadata.name=X`), if any.
    pub fn name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(field, equal, _)| field == "metadata.name" && *equal)
            .map(|(_, _, value)| value.as_str())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = match field.as_str() {
                "metadata.name" => object["metadata"]["name"].as_str(),
                _ => object["metadata"]["namespace"].as_str(),
            }
            .unwrap_or_default();
            (actual == value) == *equal
        })
    }
}

/// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`) in the string form of
/// `metav1.FormatLabelSelector`: requirements sorted by key, as `Scale.status.selector` shows.
pub fn to_string(selector: &Value) -> String {
    let mut terms: Vec<(String, String)> = selector["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| (k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default().to_string();
        let mut values: Vec<&str> = expression["values"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        values.sort_unstable();
        let values = values.join(",");
        let term = match expression["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.clone(),
            _ => format!("!{key}"),
        };
        terms.push((key, term));
    }
    terms.sort();
    terms
        .into_iter()
        .map(|(_, term)| term)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    fn matches(selector: &str, labels: Value) -> bool {
        LabelSelector::parse(selector)
            .unwrap()
            .matches(&object(labels))
    }

    #[test]
    fn equality_and_inequality() {
        let spark = json!({"datarobot-lrs-type": "spark_app"});
        assert!(matches("datarobot-lrs-type=spark_app", spark.clone()));
        assert!(matches("datarobot-lrs-type==spark_app", spark.clone()));
        assert!(!matches("datarobot-lrs-type=deployment", spark.clone()));
        assert!(matches("datarobot-lrs-type!=deployment", spark.clone()));
        assert!(!matches("datarobot-lrs-type!=spark_app", spark));
        assert!(matches("team!=x", json!({})), "!= matches a missing label");
    }

    #[test]
    fn set_based_and_existence() {
        let labels = json!({"tier": "web", "env": "prod"});
        assert!(matches("tier in (web, db)", labels.clone()));
        assert!(!matches("tier notin (web,db)", labels.clone()));
        assert!(matches("env", labels.clone()));
        assert!(!matches("!env", labels.clone()));
        assert!(matches("!missing", labels.clone()));
        assert!(matches("tier=web,env=prod", labels.clone()));
        assert!(!matches("tier=web,env=dev", labels.clone()));
        assert!(matches("", labels));
    }

    #[test]
    fn invalid_selectors_are_rejected() {
        for bad in [
            "a=b=c",
            "tier in web",
            "tier in (web",
            "=x",
            "a b",
            "bad key!/x=y",
            "a=-bad-",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn field_selector_on_name_and_namespace() {
        let selector = FieldSelector::parse("metadata.name=a,metadata.namespace!=other").unwrap();
        assert_eq!(selector.name(), Some("a"));
        assert!(selector.matches(&object(json!({}))));
        assert!(
            !FieldSelector::parse("metadata.name=b")
                .unwrap()
                .matches(&object(json!({})))
        );
        assert!(FieldSelector::parse("spec.foo=x").is_err());
    }
}
