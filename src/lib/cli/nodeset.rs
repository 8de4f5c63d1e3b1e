//! Node sets, as ClusterShell writes them: `edge[1-5,9]` is edge1 to edge5
//! and edge9, `web[01-12]` keeps the zero padding, `a,b` is both, and
//! `@zone=eu` is every member with that label. [`expand`] turns what a user
//! typed into patterns; [`fold`] writes a list of names back as the
//! shortest such set (`dshbak -c`'s headers).

/// Names one node set may expand to, at most: a typo such as `n[1-99999999]`
/// is refused, not allocated.
pub(crate) const MAX_EXPANDED: usize = 65_536;

/// One member a node set names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// A member's name or id.
    Name(String),
    /// Every member whose label `.0` is `.1`.
    Label(String, String),
}

impl Pattern {
    /// Whether a member with this id, name and labels is one this names.
    pub(crate) fn matches(
        &self,
        id: &str,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        match self {
            Self::Name(n) => n == id || n == name,
            Self::Label(k, v) => labels.get(k) == Some(v),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Label(k, v) => write!(f, "@{k}={v}"),
        }
    }
}

/// The patterns of `spec`: comma-separated parts (commas inside brackets
/// belong to the range), each a name with bracketed ranges or `@KEY=VALUE`.
///
/// # Errors
/// Unbalanced brackets, a bad range, an empty part, or more than
/// [`MAX_EXPANDED`] names; the message names the part.
pub(crate) fn expand(spec: &str) -> Result<Vec<Pattern>, String> {
    let mut out = Vec::new();
    for part in split_top(spec)? {
        if part.is_empty() {
            return Err(format!("empty node name in node set {spec:?}"));
        }
        if let Some(label) = part.strip_prefix('@') {
            let Some((k, v)) = label.split_once('=') else {
                return Err(format!("{part:?}: a label selector is @KEY=VALUE"));
            };
            if k.is_empty() {
                return Err(format!("{part:?}: empty label key"));
            }
            out.push(Pattern::Label(k.to_owned(), v.to_owned()));
            continue;
        }
        for name in expand_ranges(part)? {
            out.push(Pattern::Name(name));
            if out.len() > MAX_EXPANDED {
                return Err(format!(
                    "node set {spec:?} names more than {MAX_EXPANDED} nodes"
                ));
            }
        }
    }
    Ok(out)
}

/// `--node` of the commands that route one request per member through the
/// node at `--addr` (maint, labels).
#[derive(Debug, clap::Args)]
pub(crate) struct RoutedNodes {
    /// A member's id or unique name, or a node set (`edge[1-5,9]`,
    /// `@rack=r12`; repeatable); each request is routed through the node at
    /// --addr [default: that node].
    #[arg(long, value_name = "NODES")]
    pub(crate) node: Vec<String>,
}

impl RoutedNodes {
    /// The one member named (empty: the node at `--addr`), routed as one
    /// request; `None` for a node set.
    pub(crate) fn single(&self) -> Option<String> {
        match self.node.as_slice() {
            [] => Some(String::new()),
            [one] if one_name(&self.node) => Some(one.clone()),
            _ => None,
        }
    }
}

/// Whether `specs` name one member by id or name (no range, list or label):
/// commands that route one request keep their single-target output for it.
pub(crate) fn one_name(specs: &[String]) -> bool {
    matches!(specs, [one] if matches!(expand(one).as_deref(), Ok([Pattern::Name(_)])))
}

/// `spec` split at the commas outside brackets.
fn split_top(spec: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in spec.char_indices() {
        match c {
            '[' if depth > 0 => return Err(format!("{spec:?}: nested brackets")),
            '[' => depth = 1,
            ']' if depth == 0 => return Err(format!("{spec:?}: ']' without '['")),
            ']' => depth = 0,
            ',' if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(format!("{spec:?}: '[' without ']'"));
    }
    parts.push(&spec[start..]);
    Ok(parts)
}

/// The names of one part: its first bracket group expanded, then the rest
/// of each name the same way.
fn expand_ranges(part: &str) -> Result<Vec<String>, String> {
    let Some(open) = part.find('[') else {
        return Ok(vec![part.to_owned()]);
    };
    let close = open
        + part[open..]
            .find(']')
            .ok_or_else(|| format!("{part:?}: '[' without ']'"))?;
    let (prefix, body, rest) = (&part[..open], &part[open + 1..close], &part[close + 1..]);
    let tails = expand_ranges(rest)?;
    let mut out = Vec::new();
    for item in body.split(',') {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let bad = || format!("{part:?}: {item:?} is not a number or a range like 1-5");
        if lo.is_empty()
            || !lo.bytes().all(|b| b.is_ascii_digit())
            || !hi.bytes().all(|b| b.is_ascii_digit())
            || hi.is_empty()
        {
            return Err(bad());
        }
        let (a, b): (u64, u64) = (
            lo.parse().map_err(|_| bad())?,
            hi.parse().map_err(|_| bad())?,
        );
        if a > b {
            return Err(format!("{part:?}: range {item} goes down"));
        }
        // Zero padding as written: 01-12 is two digits wide.
        let width = if lo.len() > 1 && lo.starts_with('0') {
            lo.len()
        } else {
            0
        };
        if (b - a + 1).saturating_mul(tails.len() as u64) > MAX_EXPANDED as u64
            || out.len() > MAX_EXPANDED
        {
            return Err(format!("{part:?} names more than {MAX_EXPANDED} nodes"));
        }
        for n in a..=b {
            for t in &tails {
                out.push(format!("{prefix}{n:0width$}{t}"));
            }
        }
    }
    Ok(out)
}

/// `names` written as a node set: names that differ only in a trailing
/// number (of one zero padding) share a bracketed range, others stand alone;
/// `fold(["e1", "e2", "e3", "e5", "db"])` is `db,e[1-3,5]`.
pub(crate) fn fold(names: &[String]) -> String {
    use std::collections::{BTreeMap, BTreeSet};
    let mut alone: Vec<String> = Vec::new();
    let mut numbered: Vec<(&str, &str)> = Vec::new();
    for name in names {
        let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (prefix, num) = name.split_at(digits);
        if prefix.is_empty() || num.is_empty() || num.len() > 18 {
            alone.push(name.clone());
        } else {
            numbered.push((prefix, num));
        }
    }
    // Widths written zero-padded, per prefix: a number as wide as one of
    // them (web10 beside web09) belongs to that padded group.
    let mut padded: BTreeSet<(&str, usize)> = BTreeSet::new();
    for &(prefix, num) in &numbered {
        if num.len() > 1 && num.starts_with('0') {
            padded.insert((prefix, num.len()));
        }
    }
    // (prefix, width or 0) -> numbers.
    let mut groups: BTreeMap<(String, usize), Vec<u64>> = BTreeMap::new();
    for (prefix, num) in numbered {
        let width = if padded.contains(&(prefix, num.len())) {
            num.len()
        } else {
            0
        };
        if let Ok(n) = num.parse::<u64>() {
            groups
                .entry((prefix.to_owned(), width))
                .or_default()
                .push(n);
        }
    }
    let mut parts: Vec<String> = alone;
    for ((prefix, width), mut nums) in groups {
        nums.sort_unstable();
        nums.dedup();
        if let [n] = nums[..] {
            parts.push(format!("{prefix}{n:0width$}"));
            continue;
        }
        let mut ranges: Vec<String> = Vec::new();
        let mut i = 0;
        while i < nums.len() {
            let mut j = i;
            while j + 1 < nums.len() && nums[j + 1] == nums[j] + 1 {
                j += 1;
            }
            ranges.push(if i == j {
                format!("{:0width$}", nums[i])
            } else {
                format!("{:0width$}-{:0width$}", nums[i], nums[j])
            });
            i = j + 1;
        }
        parts.push(format!("{prefix}[{}]", ranges.join(",")));
    }
    parts.sort();
    parts.dedup();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        expand(spec)
            .unwrap()
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn ranges_lists_padding_and_labels_expand() {
        assert_eq!(names("edge[1-3,9]"), ["edge1", "edge2", "edge3", "edge9"]);
        assert_eq!(names("web[08-10]"), ["web08", "web09", "web10"]);
        assert_eq!(names("a,b[1-2]-x,c"), ["a", "b1-x", "b2-x", "c"]);
        assert_eq!(names("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(
            expand("@zone=eu,db").unwrap(),
            [
                Pattern::Label("zone".into(), "eu".into()),
                Pattern::Name("db".into())
            ]
        );
    }

    #[test]
    fn bad_sets_are_refused_naming_the_part() {
        for (spec, says) in [
            ("edge[1-3", "without ']'"),
            ("edge1-3]", "without '['"),
            ("edge[3-1]", "goes down"),
            ("edge[a-b]", "not a number"),
            ("a,,b", "empty node name"),
            ("@zone", "@KEY=VALUE"),
            ("n[1-99999999]", "more than"),
            ("n[[1]]", "nested"),
        ] {
            let e = expand(spec).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn fold_writes_the_shortest_set_and_expands_back() {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(fold(&list(&["e3", "e1", "e2", "e5", "db"])), "db,e[1-3,5]");
        assert_eq!(fold(&list(&["web09", "web10", "web08"])), "web[08-10]");
        assert_eq!(fold(&list(&["n1"])), "n1");
        assert_eq!(fold(&list(&["7", "x"])), "7,x");
        let set = "a[1-4,7],b,c[01-03]";
        assert_eq!(fold(&names(set)), set);
    }
}
