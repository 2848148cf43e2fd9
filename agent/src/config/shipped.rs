//! The shipped `packaging/agent/agent.toml` against this parser: it documents every key
//! [`RawAgentConfig`] accepts and no other, its example is accepted and shows the defaults,
//! and the file as shipped is all comments (triad_daemon::shipped has the rules).

use std::path::Path;

use triad_daemon::shipped::{
    check_documents_every_key, check_examples_show_defaults, get_key, leaf_keys, remove_key,
    set_key, table, to_text, uncomment_alternatives, uncomment_examples,
};

use super::{AgentConfig, RawAgentConfig};

const FILE: &str = "packaging/agent/agent.toml";
const SHIPPED: &str = include_str!("../../../packaging/agent/agent.toml");

fn parse(text: &str) -> Result<AgentConfig, String> {
    AgentConfig::parse(Path::new("agent.toml"), text).map_err(|error| error.to_string())
}

/// The example's keys whose value is not the default: the required ones and illustrations
/// (their comment gives the default).
const NOT_DEFAULTS: &[&str] = &[
    "node.id",
    "node.role",
    "node.address",
    "cluster.name",
    "cluster.seeds",
    "tls.ca",
    "tls.cert",
    "tls.key",
    "galera.peers",
    "galera.innodb_buffer_pool_size",
];

#[test]
fn shipped_agent_toml_documents_every_key() {
    check_documents_every_key::<RawAgentConfig>(FILE, SHIPPED).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn shipped_agent_toml_shows_the_defaults() {
    let example = table(FILE, &uncomment_examples(SHIPPED)).unwrap();
    check_examples_show_defaults(FILE, &[example], NOT_DEFAULTS, parse)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The `##` lines: what each replaces in the example, and that the result is accepted.
#[test]
fn shipped_agent_toml_alternatives_are_accepted() {
    let example = table(FILE, &uncomment_examples(SHIPPED)).unwrap();
    let everything = table(FILE, &uncomment_alternatives(SHIPPED)).unwrap();
    let alternatives: Vec<String> = leaf_keys(&everything)
        .difference(&leaf_keys(&example))
        .cloned()
        .collect();
    assert_eq!(
        alternatives,
        ["tls.insecure"],
        "a new `##` line: test it here"
    );
    let mut insecure = example.clone();
    for key in ["tls.ca", "tls.cert", "tls.key"] {
        remove_key(&mut insecure, key).unwrap();
    }
    let value = get_key(&everything, "tls.insecure").unwrap().clone();
    set_key(&mut insecure, "tls.insecure", value);
    let config = parse(&to_text(&insecure)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.tls, None);
}
