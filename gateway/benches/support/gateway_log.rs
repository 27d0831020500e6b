//! What a benchmark's gateway logged: its warnings and errors, grouped by
//! message (a warning during a benchmark is a finding, not noise).

/// The warning and error lines of the log at `path`, grouped by message
/// (the level and the words without `key=value` fields), most frequent first.
pub(crate) fn warnings(path: &std::path::Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut groups: std::collections::BTreeMap<String, usize> = Default::default();
    for line in text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
    {
        // Drop the timestamp and `key=value` fields.
        let message: Vec<&str> = line
            .split_whitespace()
            .skip(1)
            .filter(|w| !w.contains('='))
            .collect();
        *groups.entry(message.join(" ")).or_default() += 1;
    }
    let mut groups: Vec<(String, usize)> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    groups
}

/// Print `warnings(path)`, each line prefixed with `label`.
pub(crate) fn print_warnings(label: &str, path: &std::path::Path) {
    let groups = warnings(path);
    if groups.is_empty() {
        println!("{label}: the gateway logged no warnings or errors");
    }
    for (message, n) in groups {
        println!("{label}: the gateway logged {n} × \"{message}\"");
    }
}
