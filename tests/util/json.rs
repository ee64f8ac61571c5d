//! Reading the report's JSON in tests: paths of keys, with failures that
//! name the missing key and show the start of the document.

#![allow(dead_code)]

use serde_json::Value;

/// `v[a][b]...`, or an error naming the missing key.
pub fn get<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value, String> {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        cur = cur.get(*key).ok_or_else(|| format!("missing key `{}`", path[..=i].join(".")))?;
    }
    Ok(cur)
}

/// `v[a][b]...`, panicking with the path if a key is missing.
#[track_caller]
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    get(v, path).unwrap_or_else(|e| panic!("{e} in {}", short(v)))
}

/// A string at `path`.
#[track_caller]
pub fn as_str<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or_else(|| panic!("`{}` is not a string in {}", path.join("."), short(v)))
}

/// A number at `path`.
#[track_caller]
pub fn as_u64(v: &Value, path: &[&str]) -> u64 {
    at(v, path).as_u64().unwrap_or_else(|| panic!("`{}` is not a number in {}", path.join("."), short(v)))
}

/// A number that may be absent (older recordings lack some keys).
pub fn opt_u64(v: &Value, path: &[&str]) -> Option<u64> {
    get(v, path).ok().and_then(Value::as_u64)
}

/// An array at `path`.
#[track_caller]
pub fn array<'a>(v: &'a Value, path: &[&str]) -> &'a Vec<Value> {
    at(v, path).as_array().unwrap_or_else(|| panic!("`{}` is not an array", path.join(".")))
}

/// The start of a document, for failure messages.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    let cut: String = s.chars().take(400).collect();
    if cut.len() < s.len() { format!("{cut}...") } else { s }
}
