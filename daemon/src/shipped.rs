//! The shipped configuration files (`packaging/agent/agent.toml`,
//! `packaging/coordinator/coordinator.toml`) against their parsers: what the tests that keep
//! the two in step share.
//!
//! The keys a parser accepts come from its `Raw*` serde structs themselves
//! ([`accepted_keys`]), so a key added to a struct is a key the shipped file must document;
//! there is no second list to forget.
//!
//! The shipped files are all comments (the "unconfigured" default, see
//! [`crate::unconfigured`]). Their lines follow one convention:
//! - `# text` and `## text` (a space after the hashes): prose;
//! - `#[table]` and `#key = value` (a `#` directly followed by the setting): the example,
//!   which [`uncomment_examples`] turns into a configuration the parser must accept;
//! - `##key = value`: an alternative to the example (say `insecure = true` instead of the
//!   certificate files), still commented once the example is uncommented; it must not
//!   repeat a key of the example, and [`uncomment_alternatives`] uncomments it too.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::value::{SeqDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess,
    VariantAccess, Visitor,
};

/// Every key a `#[derive(Deserialize)]` config struct accepts, dotted (`gossip.listen`,
/// `balancer.octavia.monitor.type`): the fields of each struct, nested structs (whether
/// `Option` or not) being tables whose own fields are keys. It asks serde, not a copy:
/// a derived struct hands its field names (after `rename`) to the deserializer, and this
/// one records them and answers each field with a neutral value.
///
/// Errors on a type that only a real input can describe (`deserialize_any`: untagged enums,
/// `flatten`, free-form tables), naming where.
pub fn accepted_keys<T: DeserializeOwned>() -> Result<BTreeSet<String>, String> {
    let tables = RefCell::new(BTreeMap::new());
    T::deserialize(Probe {
        path: String::new(),
        tables: &tables,
    })
    .map_err(|error| error.0)?;
    let tables = tables.into_inner();
    let mut keys = BTreeSet::new();
    for (table, fields) in &tables {
        for field in *fields {
            let key = join(table, field);
            if !tables.contains_key(&key) {
                keys.insert(key);
            }
        }
    }
    Ok(keys)
}

/// The shipped file's example: `#[table]` and `#key = value` lines lose their `#`; prose
/// (`# `, `## `) and alternatives (`##key`) stay comments.
pub fn uncomment_examples(text: &str) -> String {
    uncomment(text, false)
}

/// The example and its alternatives: `##key = value` lines are uncommented too.
pub fn uncomment_alternatives(text: &str) -> String {
    uncomment(text, true)
}

fn uncomment(text: &str, alternatives: bool) -> String {
    let setting = |rest: &str| rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[');
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if setting(rest) => rest,
            Some(rest) if alternatives => match rest.strip_prefix('#') {
                Some(rest) if setting(rest) => rest,
                _ => line,
            },
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` parsed as a TOML table, the error naming `what`.
pub fn table(what: &str, text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>()
        .map_err(|error| format!("{what} is not TOML: {error}\n{text}"))
}

/// The dotted keys holding a value (not a table) in `table`.
pub fn leaf_keys(table: &toml::Table) -> BTreeSet<String> {
    fn walk(prefix: &str, table: &toml::Table, keys: &mut BTreeSet<String>) {
        for (key, value) in table {
            let key = join(prefix, key);
            match value {
                toml::Value::Table(inner) => walk(&key, inner, keys),
                _ => {
                    keys.insert(key);
                }
            }
        }
    }
    let mut keys = BTreeSet::new();
    walk("", table, &mut keys);
    keys
}

/// The value at a dotted key, if any.
pub fn get_key<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let (parents, last) = split(key);
    let mut table = table;
    for parent in parents {
        table = table.get(parent)?.as_table()?;
    }
    table.get(last)
}

/// Sets a dotted key, creating the tables on the way.
pub fn set_key(table: &mut toml::Table, key: &str, value: toml::Value) {
    let (parents, last) = split(key);
    let mut table = table;
    for parent in parents {
        let entry = table
            .entry(parent.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("made a table above");
    }
    table.insert(last.to_string(), value);
}

/// Removes a dotted key (its table stays, perhaps empty); returns its value.
pub fn remove_key(table: &mut toml::Table, key: &str) -> Option<toml::Value> {
    let (parents, last) = split(key);
    let mut table = table;
    for parent in parents {
        table = table.get_mut(parent)?.as_table_mut()?;
    }
    table.remove(last)
}

/// `table` as TOML text again.
pub fn to_text(table: &toml::Table) -> String {
    toml::to_string(table).expect("a toml::Table always serialises")
}

/// Checks a shipped file against the keys of its parser's raw struct `T`:
/// - the file is all comments (the unconfigured default the daemon waits on);
/// - every key `T` accepts appears, commented, in the example or as an alternative;
/// - every key the file shows is one `T` accepts (else the parser would refuse it);
/// - the example and its alternatives are TOML without repeated keys.
///
/// The error lists every problem, one per line.
pub fn check_documents_every_key<T: DeserializeOwned>(
    file: &str,
    shipped: &str,
) -> Result<(), String> {
    let mut problems = Vec::new();
    if !crate::unconfigured::is_unconfigured(shipped) {
        problems.push(format!(
            "{file} must hold comments only (it is the unconfigured default the daemon waits on)"
        ));
    }
    let accepted = accepted_keys::<T>()?;
    let documented = leaf_keys(&table(
        &format!("{file} with its examples and alternatives uncommented"),
        &uncomment_alternatives(shipped),
    )?);
    for key in accepted.difference(&documented) {
        problems.push(format!(
            "{file} does not document `{key}`, which the parser accepts: add it, commented, with its default"
        ));
    }
    for key in documented.difference(&accepted) {
        problems.push(format!(
            "{file} documents `{key}`, which the parser refuses as an unknown key"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Checks that the example shows each key's default, except the keys in `not_defaults`
/// (required keys, and illustrations whose default the prose gives), which must not.
///
/// `variants[0]` is the example as uncommented; the others are the example changed so that
/// sections another key selects are read too (e.g. `kind = "octavia"`). `parse` is the real
/// parser and gives what the daemon would run with, compared by its `Debug` text. A key
/// shows its default when every variant that has it with the example's value resolves the
/// same without it. Every variant must parse. The error lists every problem, one per line.
pub fn check_examples_show_defaults<R: fmt::Debug>(
    file: &str,
    variants: &[toml::Table],
    not_defaults: &[&str],
    parse: impl Fn(&str) -> Result<R, String>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut resolved = Vec::new();
    for (index, variant) in variants.iter().enumerate() {
        match parse(&to_text(variant)) {
            Ok(config) => resolved.push(format!("{config:?}")),
            Err(error) => {
                problems.push(format!(
                    "{file}: example variant {index} is refused: {error}"
                ));
                resolved.push(String::new());
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let keys: BTreeSet<String> = variants.iter().flat_map(leaf_keys).collect();
    for key in not_defaults {
        if !keys.contains(*key) {
            problems.push(format!(
                "`{key}` is listed as shown with a value other than its default, but {file}'s example has no such key"
            ));
        }
    }
    for key in &keys {
        // the first variant where the value shown is not what the daemon runs without it
        let mut differs = None;
        for (variant, config) in variants.iter().zip(&resolved) {
            let Some(value) = get_key(variant, key) else {
                continue;
            };
            if get_key(&variants[0], key) != Some(value) {
                // changed to make this variant: not what the file shows
                continue;
            }
            let mut without = variant.clone();
            remove_key(&mut without, key);
            let outcome = match parse(&to_text(&without)) {
                Ok(other) if format!("{other:?}") == *config => continue,
                Ok(_) => "resolves differently".to_string(),
                Err(error) => format!("is refused ({error})"),
            };
            differs = Some((value.to_string(), outcome));
            break;
        }
        let listed = not_defaults.contains(&key.as_str());
        match differs {
            Some((value, outcome)) if !listed => problems.push(format!(
                "{file} shows `{key} = {value}`, but without it the example {outcome}: show the default (or, for an illustration, give the default in the prose and list the key as not a default)"
            )),
            None if listed => problems.push(format!(
                "{file}'s `{key}` is listed as not a default, but its value is the default"
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn split(key: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    (parts, last)
}

#[derive(Debug)]
struct ProbeError(String);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<M: fmt::Display>(message: M) -> Self {
        ProbeError(message.to_string())
    }
}

/// Each struct's path → its field names.
type Tables = RefCell<BTreeMap<String, &'static [&'static str]>>;

/// A deserializer without input: structs get every one of their fields, other values a
/// neutral one (false, 0, "", empty lists, an enum's first variant).
struct Probe<'t> {
    path: String,
    tables: &'t Tables,
}

fn empty_seq() -> SeqDeserializer<std::iter::Empty<()>, ProbeError> {
    SeqDeserializer::new(std::iter::empty())
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(format!(
            "`{}`: its type does not name its keys to serde (deserialize_any); \
             accepted_keys needs plain structs",
            self.path
        )))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_char('x')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        // Some: look inside (an optional section is still a section)
        visitor.visit_some(self)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(empty_seq())
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(empty_seq())
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(empty_seq())
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_map(Fields {
            fields: &[],
            next: 0,
            path: self.path,
            tables: self.tables,
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.tables.borrow_mut().insert(self.path.clone(), fields);
        visitor.visit_map(Fields {
            fields,
            next: 0,
            path: self.path,
            tables: self.tables,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let Some(variant) = variants.first() else {
            return Err(ProbeError(format!(
                "`{}`: an enum without variants",
                self.path
            )));
        };
        visitor.visit_enum(FirstVariant {
            variant,
            probe: self,
        })
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
}

/// A struct's fields, each once, as the keys of a map.
struct Fields<'t> {
    fields: &'static [&'static str],
    next: usize,
    path: String,
    tables: &'t Tables,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        let name: StrDeserializer<'_, ProbeError> = field.into_deserializer();
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        let field = self.fields[self.next];
        self.next += 1;
        seed.deserialize(Probe {
            path: join(&self.path, field),
            tables: self.tables,
        })
    }
}

struct FirstVariant<'t> {
    variant: &'static str,
    probe: Probe<'t>,
}

impl<'de, 't> EnumAccess<'de> for FirstVariant<'t> {
    type Error = ProbeError;
    type Variant = Probe<'t>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Probe<'t>), ProbeError> {
        let name: StrDeserializer<'_, ProbeError> = self.variant.into_deserializer();
        Ok((seed.deserialize(name)?, self.probe))
    }
}

impl<'de> VariantAccess<'de> for Probe<'_> {
    type Error = ProbeError;

    fn unit_variant(self) -> Result<(), ProbeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ProbeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(empty_seq())
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_map(Fields {
            fields,
            next: 0,
            path: self.path,
            tables: self.tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Raw {
        name: String,
        #[serde(default)]
        seeds: Vec<String>,
        port: Option<u16>,
        ratio: Option<f64>,
        on: Option<bool>,
        kind: Option<Kind>,
        path: Option<std::path::PathBuf>,
        inner: Inner,
        #[serde(default)]
        optional: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(rename = "type")]
        kind: Option<String>,
        deeper: Option<Deeper>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Deeper {
        count: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        First,
        #[allow(dead_code)]
        Second,
    }

    #[test]
    fn accepted_keys_are_the_struct_fields_with_nested_structs_as_tables() {
        let keys: Vec<String> = accepted_keys::<Raw>().unwrap().into_iter().collect();
        assert_eq!(
            keys,
            [
                "inner.deeper.count",
                "inner.type",
                "kind",
                "name",
                "on",
                "optional.deeper.count",
                "optional.type",
                "path",
                "port",
                "ratio",
                "seeds",
            ]
        );
    }

    #[test]
    fn accepted_keys_are_exactly_what_the_parser_takes() {
        // every key, with a value of its type, is accepted; one more is refused
        let text =
            "name = \"a\"\nseeds = []\nport = 1\nratio = 0.5\non = true\nkind = \"second\"\n\
                    path = \"/x\"\n[inner]\ntype = \"t\"\n[inner.deeper]\ncount = 1\n\
                    [optional]\ntype = \"u\"\n[optional.deeper]\ncount = 2\n";
        let parsed = table("text", text).unwrap();
        assert_eq!(leaf_keys(&parsed), accepted_keys::<Raw>().unwrap());
        toml::from_str::<Raw>(text).unwrap();
        let error = toml::from_str::<Raw>(&format!("{text}bogus = 1\n")).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `bogus`"),
            "{error}"
        );
    }

    #[test]
    fn a_free_form_value_is_named_not_guessed() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Free {
            extra: Option<toml::Value>,
        }
        let error = accepted_keys::<Free>().unwrap_err();
        assert!(error.contains("`extra`"), "{error}");
    }

    const SHIPPED: &str = "# prose\n\
        ## more prose = not a key\n\
        #[inner]\n\
        ## the type\n\
        #type = \"t\"\n\
        #[inner.deeper]\n\
        #count = 1\n\
        #\n\
        #name = \"misplaced\"\n";

    #[test]
    fn examples_and_alternatives_are_uncommented_prose_is_not() {
        let shipped = "# prose\n## more = prose\n#[t]\n#a = 1\n##b = 2\n#\n";
        assert_eq!(
            uncomment_examples(shipped),
            "# prose\n## more = prose\n[t]\na = 1\n##b = 2\n#"
        );
        assert_eq!(
            uncomment_alternatives(shipped),
            "# prose\n## more = prose\n[t]\na = 1\nb = 2\n#"
        );
    }

    #[test]
    fn the_check_names_missing_and_unknown_keys() {
        let error = check_documents_every_key::<Raw>("x.toml", SHIPPED).unwrap_err();
        for expected in [
            "x.toml does not document `name`",
            "x.toml does not document `optional.deeper.count`",
            "x.toml documents `inner.deeper.name`, which the parser refuses",
        ] {
            assert!(error.contains(expected), "{expected}:\n{error}");
        }
        assert!(!error.contains("`inner.type`"), "{error}");
        let error = check_documents_every_key::<Deeper>("y.toml", "count = 1\n").unwrap_err();
        assert!(error.contains("y.toml must hold comments only"), "{error}");
        check_documents_every_key::<Deeper>("y.toml", "## how many\n#count = 1\n").unwrap();
        check_documents_every_key::<Deeper>("y.toml", "##count = 1\n").unwrap();
        let error =
            check_documents_every_key::<Deeper>("y.toml", "#count = 1\n##count = 2\n").unwrap_err();
        assert!(error.contains("not TOML"), "{error}");
    }

    #[test]
    fn the_defaults_check_compares_what_the_parser_resolves() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Small {
            name: String,
            count: Option<u32>,
            mode: Option<String>,
            extra: Option<u32>,
        }
        // count defaults to 1; extra is read only in mode "b"
        let parse = |text: &str| -> Result<(String, u32, Option<u32>), String> {
            let raw: Small = toml::from_str(text).map_err(|e| e.to_string())?;
            let b = raw.mode.as_deref() == Some("b");
            Ok((raw.name, raw.count.unwrap_or(1), raw.extra.filter(|_| b)))
        };
        let check = |text: &str, not_defaults: &[&str]| {
            let example = table("example", text).unwrap();
            let mut b = example.clone();
            set_key(&mut b, "mode", toml::Value::String("b".into()));
            check_examples_show_defaults("x.toml", &[example, b], not_defaults, parse)
        };
        check("name = \"n\"\ncount = 1\nmode = \"a\"\n", &["name"]).unwrap();
        let error = check("name = \"n\"\ncount = 2\n", &["name"]).unwrap_err();
        assert!(error.contains("x.toml shows `count = 2`"), "{error}");
        let error = check("name = \"n\"\ncount = 1\n", &["name", "count"]).unwrap_err();
        assert!(
            error.contains("`count` is listed as not a default"),
            "{error}"
        );
        let error = check("name = \"n\"\n", &[]).unwrap_err();
        assert!(
            error.contains("`name = \"n\"`") && error.contains("refused"),
            "{error}"
        );
        let error = check("name = \"n\"\n", &["name", "gone"]).unwrap_err();
        assert!(error.contains("`gone` is listed"), "{error}");
        // a key read only in a variant is checked there
        let error = check("name = \"n\"\nextra = 3\n", &["name"]).unwrap_err();
        assert!(error.contains("`extra = 3`"), "{error}");
        let error = check("name = \"n\"\nbogus = 3\n", &["name"]).unwrap_err();
        assert!(error.contains("variant 0 is refused"), "{error}");
    }

    #[test]
    fn dotted_keys_are_read_set_and_removed() {
        let mut t = table("t", "[a]\nb = 1\n[a.c]\nd = 2\n").unwrap();
        assert_eq!(get_key(&t, "a.c.d"), Some(&toml::Value::Integer(2)));
        assert_eq!(remove_key(&mut t, "a.b"), Some(toml::Value::Integer(1)));
        set_key(&mut t, "x.y.z", toml::Value::Boolean(true));
        assert_eq!(
            leaf_keys(&t).into_iter().collect::<Vec<_>>(),
            ["a.c.d", "x.y.z"]
        );
        assert_eq!(table("again", &to_text(&t)).unwrap(), t);
    }
}
