//! Equality-based label selectors (`a=b,c!=d,e,!f`), as `?labelSelector=` takes them.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::validate::{check_label_value, check_qualified_name};

/// One term of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`: the label is present with that value.
    Equals(String, String),
    /// `key!=value`: the label is absent or has another value.
    NotEquals(String, String),
    /// `key`: the label is present.
    Exists(String),
    /// `!key`: the label is absent.
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A parsed selector: all requirements must hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The terms, in the order given.
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl FromStr for LabelSelector {
    /// What is wrong with the selector, as a phrase.
    type Err = String;

    fn from_str(selector: &str) -> Result<Self, Self::Err> {
        if selector.trim().is_empty() {
            return Ok(Self::default());
        }
        let requirements = selector
            .split(',')
            .map(|term| parse_requirement(term.trim()))
            .collect::<Result<_, _>>()?;
        Ok(Self { requirements })
    }
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    if term.is_empty() {
        return Err("a term between commas is empty".into());
    }
    if term.contains(['(', ')']) || term.split_whitespace().any(|w| w == "in" || w == "notin") {
        return Err(format!(
            "{term:?} is a set-based requirement, which this service does not support: use equality-based terms such as a=b, c!=d, e or !e"
        ));
    }
    let requirement = if let Some((key, value)) = term.split_once("!=") {
        Requirement::NotEquals(key.trim().into(), value.trim().into())
    } else if let Some((key, value)) = term.split_once("==") {
        Requirement::Equals(key.trim().into(), value.trim().into())
    } else if let Some((key, value)) = term.split_once('=') {
        Requirement::Equals(key.trim().into(), value.trim().into())
    } else if let Some(key) = term.strip_prefix('!') {
        Requirement::DoesNotExist(key.trim().into())
    } else {
        Requirement::Exists(term.into())
    };
    let (key, value) = match &requirement {
        Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, Some(v)),
        Requirement::Exists(k) | Requirement::DoesNotExist(k) => (k, None),
    };
    check_qualified_name(key).map_err(|problem| format!("label key {problem}"))?;
    if let Some(value) = value {
        if value.contains(['=', '!']) {
            return Err(format!(
                "{term:?}: the value {value:?} contains an operator"
            ));
        }
        check_label_value(value).map_err(|problem| format!("label value {problem}"))?;
    }
    Ok(requirement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[rstest]
    #[case::empty_selects_all("", &[], true)]
    #[case::equals("app=web", &[("app", "web")], true)]
    #[case::double_equals("app==web", &[("app", "web")], true)]
    #[case::equals_other_value("app=web", &[("app", "db")], false)]
    #[case::equals_absent("app=web", &[], false)]
    #[case::not_equals_absent("app!=web", &[], true)]
    #[case::not_equals_same("app!=web", &[("app", "web")], false)]
    #[case::exists("app", &[("app", "")], true)]
    #[case::exists_absent("app", &[], false)]
    #[case::does_not_exist("!app", &[], true)]
    #[case::does_not_exist_present("!app", &[("app", "x")], false)]
    #[case::all_must_hold("a=b, c!=d ,e,!f", &[("a", "b"), ("c", "x"), ("e", "")], true)]
    #[case::one_fails("a=b,!f", &[("a", "b"), ("f", "")], false)]
    #[case::prefixed_key("bursting.cci.io/cluster-pod-uid=123", &[("bursting.cci.io/cluster-pod-uid", "123")], true)]
    #[case::empty_value("a=", &[("a", "")], true)]
    fn selector_matches(
        #[case] selector: &str,
        #[case] pairs: &[(&str, &str)],
        #[case] expected: bool,
    ) {
        let selector: LabelSelector = selector.parse().unwrap();
        assert_eq!(selector.matches(Some(&labels(pairs))), expected);
    }

    #[rstest]
    #[case::set_based_in("env in (a,b)", "set-based")]
    #[case::set_based_notin("env notin (a)", "set-based")]
    #[case::empty_term("a=b,,c", "empty")]
    #[case::trailing_comma("a=b,", "empty")]
    #[case::bad_key("a b=c", "label key")]
    #[case::bad_value("a=b c", "label value")]
    #[case::operator_in_value("a=b=c", "operator")]
    #[case::bare_bang("!", "label key")]
    fn selector_refuses(#[case] selector: &str, #[case] hint: &str) {
        let problem = selector.parse::<LabelSelector>().unwrap_err();
        assert!(problem.contains(hint), "{problem}");
    }

    #[test]
    fn a_selector_matches_an_object_without_labels_only_through_negations() {
        let selector: LabelSelector = "!a,b!=c".parse().unwrap();
        assert!(selector.matches(None));
        let selector: LabelSelector = "a".parse().unwrap();
        assert!(!selector.matches(None));
    }
}
