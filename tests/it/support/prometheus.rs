//! A strict reader of the Prometheus text format (0.0.4), so tests check what a
//! scraper would: every sample in a family declared by `# TYPE`, names and
//! labels well formed, histograms cumulative and ending in `+Inf` = `_count`.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its metric name (`x_bucket`, `x_sum`… for histograms).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// One family: its `# TYPE`, `# HELP` and samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Family {
    /// counter, gauge, histogram, summary or untyped.
    pub kind: String,
    /// The help text.
    pub help: String,
    /// Its samples, in order.
    pub samples: Vec<Sample>,
}

impl Family {
    /// The value of the sample named `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads `{a="x",b="y"}` (after the name); returns the labels and the rest.
fn labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = text.strip_prefix('{') else {
        return Ok((labels, text));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest
            .split_once("=\"")
            .ok_or(format!("bad label in {text}"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {text}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err("raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {text}")),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice in {text}"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

/// Parses a whole exposition; `Err` names the first problem.
pub fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_string()).or_default().help = help.to_string();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or(format!("bad TYPE line {line}"))?;
            if !is_name(name) {
                return Err(format!("bad metric name {name:?}"));
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("unknown type {kind:?}"));
            }
            let family = families.entry(name.to_string()).or_default();
            if !family.kind.is_empty() || !family.samples.is_empty() {
                return Err(format!("TYPE of {name} after its samples or twice"));
            }
            family.kind = kind.to_string();
            current = Some(name.to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or(format!("no value in {line:?}"))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        let (labels, rest) = labels(&line[name_end..])?;
        let mut parts = rest.split_whitespace();
        let value = value(parts.next().ok_or(format!("no value in {line:?}"))?)?;
        if parts.nth(1).is_some() {
            return Err(format!("trailing text in {line:?}"));
        }
        let family_name = current
            .clone()
            .ok_or(format!("sample {name} before any TYPE"))?;
        let family = families.get_mut(&family_name).expect("declared");
        let belongs = match family.kind.as_str() {
            "histogram" => [
                format!("{family_name}_bucket"),
                format!("{family_name}_sum"),
                format!("{family_name}_count"),
            ]
            .contains(&name.to_string()),
            _ => name == family_name,
        };
        if !belongs {
            return Err(format!("sample {name} is not of the family {family_name}"));
        }
        family.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    for (name, family) in &families {
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
        if family.kind == "counter" && family.samples.iter().any(|s| s.value < 0.0) {
            return Err(format!("counter {name} is negative"));
        }
    }
    Ok(families)
}

/// A histogram's buckets, `(le, count)`, per label set (without `le`).
type Buckets = BTreeMap<Vec<(String, String)>, Vec<(f64, f64)>>;

/// Buckets rise with `le` and in count, and `+Inf` equals `_count`, per label set.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    let mut series = Buckets::new();
    for sample in family
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket"))
    {
        let mut labels = sample.labels.clone();
        let le = labels
            .remove("le")
            .ok_or(format!("{name} bucket without le"))?;
        series
            .entry(labels.into_iter().collect())
            .or_default()
            .push((value(&le)?, sample.value));
    }
    for (labels, buckets) in series {
        let ordered = buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        if !ordered {
            return Err(format!("{name} buckets not cumulative: {buckets:?}"));
        }
        let (last_le, last_count) = *buckets.last().expect("a bucket");
        if last_le != f64::INFINITY {
            return Err(format!("{name} has no +Inf bucket"));
        }
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let count = family.value(&format!("{name}_count"), &labels);
        if count != Some(last_count) {
            return Err(format!(
                "{name}: +Inf bucket {last_count} but _count {count:?}"
            ));
        }
    }
    Ok(())
}
