//! Numbers as the real API server keeps them: what a JSON number in a request becomes once the
//! object has been through etcd and back.
//!
//! kube-apiserver decodes custom resources with sigs.k8s.io/json (a number without `.` that
//! fits int64 becomes an int64, every other number the nearest float64, exactly) and encodes
//! float64 with Go's shortest form, in plain notation below 1e21. Stored and read back, an
//! integral float in int64's range (`1.0`, `-0.0`, `1e3`) is therefore an integer, and an integer
//! beyond int64 (uint64's upper half) a float64; every other value is kept exactly.

use serde_json::{Number, Value};

/// Rewrites every number of `value` the way a store-and-read-back through the API server does.
pub fn as_stored(value: &mut Value) {
    match value {
        Value::Number(number) => {
            if let Some(stored) = stored(number) {
                *number = stored;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(as_stored),
        Value::Object(map) => map.values_mut().for_each(as_stored),
        _ => {}
    }
}

/// The number the API server would serve for `number`, when it differs.
fn stored(number: &Number) -> Option<Number> {
    if let Some(unsigned) = number.as_u64() {
        return (i64::try_from(unsigned).is_err())
            .then(|| Number::from_f64(unsigned as f64))
            .flatten();
    }
    if number.is_i64() {
        return None;
    }
    let float = number.as_f64()?;
    // Go's encoder writes the shortest digits, like Rust's `Display`, in plain notation below
    // 1e21; digits without a `.` that fit int64 decode as an integer.
    if float.abs() >= 1e21 {
        return None;
    }
    format!("{float}").parse::<i64>().ok().map(Number::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integral_floats_become_integers_and_integers_beyond_int64_floats() {
        let mut value: Value = serde_json::from_str(
            r#"{"a": [1.0, -0.0, 1e3, 0.9215686321258545, 5e-324, 1e21, 9223372036854775807,
                -9223372036854775808, 9007199254740993, 18446744073709551615, 1.2345678901234567e18]}"#,
        )
        .unwrap();
        as_stored(&mut value);
        let served = serde_json::to_string(&value).unwrap();
        assert_eq!(
            served,
            r#"{"a":[1,0,1000,0.9215686321258545,5e-324,1e+21,9223372036854775807,-9223372036854775808,9007199254740993,1.8446744073709552e+19,1234567890123456800]}"#
        );
        let mut again = value.clone();
        as_stored(&mut again);
        assert_eq!(again, value);
        let mut text = json!("1.0");
        as_stored(&mut text);
        assert_eq!(text, json!("1.0"));
    }
}
