//! The log: one line per event on stdout (a poll of one account, a pause, a reload, start and
//! stop), as `key=value` words or (`--log-format json`) one JSON object per line. Server text
//! is escaped in both.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::cli::LogFormat;
use crate::escape;

/// Writes log lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Log {
    format: LogFormat,
}

impl Log {
    /// A log in `format`.
    pub(crate) fn new(format: LogFormat) -> Self {
        Self { format }
    }

    /// One line: the time, `event`, then `fields` in order.
    pub(crate) fn line(&self, event: &str, fields: &[(&str, Value)]) {
        let time = rfc3339_now();
        let text = match self.format {
            LogFormat::Json => {
                let mut object = Map::new();
                object.insert("time".into(), Value::String(time));
                object.insert("event".into(), Value::String(event.into()));
                for (key, value) in fields {
                    object.insert((*key).into(), value.clone());
                }
                escape::json_text(&Value::Object(object))
            }
            LogFormat::Text => {
                let mut text = format!("{time} {event}");
                for (key, value) in fields {
                    let value = match value {
                        Value::Null => continue,
                        Value::String(s) => quote(s),
                        other => other.to_string(),
                    };
                    text.push_str(&format!(" {key}={value}"));
                }
                escape::escape(&text).into_owned()
            }
        };
        // One write per line, so that lines of concurrent accounts never interleave.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(format!("{text}\n").as_bytes());
        let _ = stdout.flush();
    }
}

/// A text value: bare if it is one plain word, else in double quotes with `"` and `\` escaped.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@+".contains(c))
    {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The time now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_millis())
}

/// `secs` since the epoch as an RFC 3339 UTC time (days to civil date: H. Hinnant's algorithm).
fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_796_687_999, 999), "2026-12-07T23:59:59.999Z");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("alice"), "alice");
        assert_eq!(quote("a b\"c"), "\"a b\\\"c\"");
        assert_eq!(quote(""), "\"\"");
    }
}
