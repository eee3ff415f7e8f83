//! A focused JSON-LD 1.1 processor: context processing, expansion and deserialisation to
//! RDF quads, for the contexts bundled in the binary (`specs/credentials.md` §3).
//!
//! It follows the JSON-LD 1.1 Processing Algorithms (context processing §4.1, IRI
//! expansion §4.2 / §5.2, expansion §5.1, value expansion §5.3, RDF serialisation §8)
//! for the features the bundled contexts and credentials use: protected terms,
//! property- and type-scoped contexts (type-scoped ones do not propagate), `@vocab`,
//! `@set`, `@list` and `@graph` containers, `@json` literals and typed values. Anything
//! else (`@reverse`, `@nest`, `@included`, index/language/id/type maps, `@import`,
//! `@base`, `@direction`) is refused with [`JsonLdError::Unsupported`] rather than
//! processed approximately, and the processor runs in *safe mode* (§3.3): a term that
//! does not expand to an absolute IRI, or a relative IRI anywhere, is an error — never
//! silently dropped, since dropped data would not be signed.
//!
//! Contexts are resolved only from [`super::contexts`]: a node never fetches one, and an
//! unknown context URL is [`JsonLdError::UnknownContext`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::contexts;

/// Most nested context documents (remote contexts) followed in one processing run.
const MAX_CONTEXT_DEPTH: usize = 32;
/// Most nested JSON levels expanded.
const MAX_DEPTH: usize = 64;
/// Most quads produced from one document.
pub const MAX_QUADS: usize = 20_000;

pub const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
const RDF_FIRST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#first";
const RDF_REST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#rest";
const RDF_NIL: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#nil";
const RDF_JSON: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON";
const RDF_LANGSTRING: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString";
const XSD_STRING: &str = "http://www.w3.org/2001/XMLSchema#string";
const XSD_BOOLEAN: &str = "http://www.w3.org/2001/XMLSchema#boolean";
const XSD_INTEGER: &str = "http://www.w3.org/2001/XMLSchema#integer";
const XSD_DOUBLE: &str = "http://www.w3.org/2001/XMLSchema#double";

/// Why a document cannot be turned into RDF. Messages are lowercase and name the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonLdError {
    #[error("unknown json-ld context {0:?}: only the bundled contexts are loaded, never fetched (see specs/credentials.md §3.2)")]
    UnknownContext(String),
    #[error("invalid json-ld context: {0}")]
    InvalidContext(String),
    #[error("protected term {0:?} cannot be redefined")]
    ProtectedTermRedefinition(String),
    #[error("term {0:?} is not defined by the document's contexts (safe mode refuses undefined terms)")]
    UndefinedTerm(String),
    #[error("{0:?} is not an absolute iri (safe mode refuses relative iris)")]
    RelativeIri(String),
    #[error("unsupported json-ld feature: {0}")]
    Unsupported(String),
    #[error("invalid json-ld: {0}")]
    Invalid(String),
    #[error("document is too large or too deeply nested: {0}")]
    TooLarge(&'static str),
}

fn shown(s: &str) -> String {
    s.chars().take(96).collect()
}

/// One term definition (JSON-LD 1.1 §4.1.1).
#[derive(Debug, Clone, PartialEq)]
struct TermDef {
    /// The IRI or keyword the term maps to; None for a null mapping.
    iri: Option<String>,
    prefix: bool,
    protected: bool,
    type_mapping: Option<String>,
    container: Vec<String>,
    /// The scoped context, unprocessed.
    context: Option<Value>,
    /// `Some(None)` is an explicit `"@language": null`.
    language: Option<Option<String>>,
}

impl TermDef {
    /// Equality ignoring `@protected` (§4.1.2 step 5.2.5 / create term definition step 27).
    fn same_as(&self, other: &TermDef) -> bool {
        self.iri == other.iri
            && self.prefix == other.prefix
            && self.type_mapping == other.type_mapping
            && self.container == other.container
            && self.context == other.context
            && self.language == other.language
    }
}

/// An active context.
#[derive(Debug, Clone, Default)]
pub struct Context {
    terms: Arc<HashMap<String, TermDef>>,
    vocab: Option<String>,
    language: Option<String>,
    /// The context before a non-propagated (type-scoped) context was applied.
    previous: Option<Box<Context>>,
}

impl Context {
    fn term(&self, t: &str) -> Option<&TermDef> {
        self.terms.get(t)
    }
}

/// Whether `s` is an absolute IRI: a scheme (`ALPHA *(ALPHA / DIGIT / + - .)`), a colon.
pub fn is_absolute_iri(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !s.chars().any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`'))
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "@base"
            | "@container"
            | "@context"
            | "@default"
            | "@direction"
            | "@embed"
            | "@explicit"
            | "@graph"
            | "@id"
            | "@import"
            | "@included"
            | "@index"
            | "@json"
            | "@language"
            | "@list"
            | "@nest"
            | "@none"
            | "@omitDefault"
            | "@prefix"
            | "@preserve"
            | "@propagate"
            | "@protected"
            | "@requireAll"
            | "@reverse"
            | "@set"
            | "@type"
            | "@value"
            | "@version"
            | "@vocab"
    )
}

/// `@` followed by ASCII letters only: reserved for future keywords, ignored (§4.2.2 step 4).
fn looks_like_keyword(s: &str) -> bool {
    s.len() > 1 && s.starts_with('@') && s.chars().skip(1).all(|c| c.is_ascii_alphabetic())
}

/// Context processing (JSON-LD 1.1 §4.1.2).
struct Processing<'a> {
    remote: &'a mut Vec<String>,
}

fn process_context(active: &Context, local: &Value, override_protected: bool, propagate: bool) -> Result<Context, JsonLdError> {
    let mut remote = Vec::new();
    Processing { remote: &mut remote }.process(active, local, override_protected, propagate)
}

impl Processing<'_> {
    fn process(&mut self, active: &Context, local: &Value, override_protected: bool, propagate: bool) -> Result<Context, JsonLdError> {
        let mut result = active.clone();
        let propagate = match local.get("@propagate") {
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(JsonLdError::InvalidContext("@propagate must be a boolean".into())),
            None => propagate,
        };
        if !propagate && result.previous.is_none() {
            result.previous = Some(Box::new(active.clone()));
        }
        let items: Vec<&Value> = match local {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for ctx in items {
            match ctx {
                Value::Null => {
                    if !override_protected && result.terms.values().any(|t| t.protected) {
                        return Err(JsonLdError::InvalidContext("cannot nullify a context with protected terms".into()));
                    }
                    let previous = if propagate { None } else { result.previous.take() };
                    result = Context { previous, ..Context::default() };
                }
                Value::String(url) => {
                    if self.remote.len() >= MAX_CONTEXT_DEPTH {
                        return Err(JsonLdError::TooLarge("context recursion"));
                    }
                    if !is_absolute_iri(url) {
                        return Err(JsonLdError::RelativeIri(shown(url)));
                    }
                    let doc = contexts::get(url).ok_or_else(|| JsonLdError::UnknownContext(shown(url)))?;
                    let inner =
                        doc.get("@context").ok_or_else(|| JsonLdError::InvalidContext(format!("{} has no @context", shown(url))))?;
                    self.remote.push(url.clone());
                    result = self.process(&result, inner, override_protected, true)?;
                    self.remote.pop();
                }
                Value::Object(map) => self.process_map(&mut result, map, override_protected)?,
                _ => return Err(JsonLdError::InvalidContext("a context must be null, a string or an object".into())),
            }
        }
        Ok(result)
    }

    fn process_map(&mut self, result: &mut Context, map: &Map<String, Value>, override_protected: bool) -> Result<(), JsonLdError> {
        for kw in ["@import", "@base", "@direction"] {
            if map.contains_key(kw) {
                return Err(JsonLdError::Unsupported(format!("{kw} in a context")));
            }
        }
        if let Some(v) = map.get("@version")
            && v.as_f64() != Some(1.1)
        {
            return Err(JsonLdError::InvalidContext("@version must be 1.1".into()));
        }
        match map.get("@vocab") {
            None => {}
            Some(Value::Null) => result.vocab = None,
            Some(Value::String(v)) => {
                let expanded = if is_absolute_iri(v) || v.starts_with("_:") {
                    v.clone()
                } else {
                    expand_iri(result, v, true, None).ok_or_else(|| JsonLdError::InvalidContext(format!("invalid @vocab {}", shown(v))))?
                };
                if !is_absolute_iri(&expanded) {
                    return Err(JsonLdError::RelativeIri(shown(v)));
                }
                result.vocab = Some(expanded);
            }
            Some(_) => return Err(JsonLdError::InvalidContext("@vocab must be a string or null".into())),
        }
        match map.get("@language") {
            None => {}
            Some(Value::Null) => result.language = None,
            Some(Value::String(l)) => result.language = Some(l.to_ascii_lowercase()),
            Some(_) => return Err(JsonLdError::InvalidContext("@language must be a string or null".into())),
        }
        let protected = match map.get("@protected") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(JsonLdError::InvalidContext("@protected must be a boolean".into())),
        };
        let mut defined: HashMap<String, bool> = HashMap::new();
        let mut terms = (*result.terms).clone();
        for key in map.keys() {
            if matches!(key.as_str(), "@version" | "@vocab" | "@language" | "@protected" | "@propagate") {
                continue;
            }
            self.define(result, &mut terms, map, key, &mut defined, protected, override_protected)?;
        }
        result.terms = Arc::new(terms);
        Ok(())
    }

    /// Create Term Definition (§4.2.2).
    #[allow(clippy::too_many_arguments)]
    fn define(
        &mut self,
        result: &Context,
        terms: &mut HashMap<String, TermDef>,
        local: &Map<String, Value>,
        term: &str,
        defined: &mut HashMap<String, bool>,
        protected_default: bool,
        override_protected: bool,
    ) -> Result<(), JsonLdError> {
        match defined.get(term) {
            Some(true) => return Ok(()),
            Some(false) => return Err(JsonLdError::InvalidContext(format!("cyclic iri mapping for {}", shown(term)))),
            None => {}
        }
        if term.is_empty() {
            return Err(JsonLdError::InvalidContext("empty term".into()));
        }
        defined.insert(term.to_owned(), false);
        let value = local.get(term).cloned().unwrap_or(Value::Null);
        if term == "@type" {
            // Only `{"@container": "@set", "@protected": …}` may be given for @type.
            let ok = value.as_object().is_some_and(|m| {
                m.keys().all(|k| k == "@container" || k == "@protected") && m.get("@container").is_none_or(|c| c == "@set")
            });
            if !ok {
                return Err(JsonLdError::InvalidContext("keywords cannot be redefined".into()));
            }
            defined.insert(term.to_owned(), true);
            return Ok(());
        }
        if is_keyword(term) {
            return Err(JsonLdError::InvalidContext(format!("keyword {} cannot be redefined", shown(term))));
        }
        if looks_like_keyword(term) {
            defined.insert(term.to_owned(), true);
            return Ok(());
        }
        let previous = terms.remove(term);
        let (map, simple) = match &value {
            Value::Null => (Map::from_iter([("@id".to_owned(), Value::Null)]), false),
            Value::String(s) => (Map::from_iter([("@id".to_owned(), Value::String(s.clone()))]), true),
            Value::Object(m) => (m.clone(), false),
            _ => return Err(JsonLdError::InvalidContext(format!("invalid definition of term {}", shown(term)))),
        };
        for k in map.keys() {
            if !matches!(k.as_str(), "@id" | "@type" | "@container" | "@context" | "@protected" | "@language" | "@prefix") {
                return Err(if matches!(k.as_str(), "@reverse" | "@nest" | "@index" | "@direction") {
                    JsonLdError::Unsupported(format!("{k} in the definition of {}", shown(term)))
                } else {
                    JsonLdError::InvalidContext(format!("unknown member {} in the definition of {}", shown(k), shown(term)))
                });
            }
        }
        let protected = match map.get("@protected") {
            None => protected_default,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(JsonLdError::InvalidContext("@protected must be a boolean".into())),
        };
        // The local context's terms are needed to expand IRIs in this definition.
        let mut scratch = Context { terms: Arc::new(terms.clone()), ..result.clone() };
        let expand_local = |this: &mut Self,
                            scratch: &mut Context,
                            terms: &mut HashMap<String, TermDef>,
                            defined: &mut HashMap<String, bool>,
                            v: &str|
         -> Result<Option<String>, JsonLdError> {
            // Define the prefix or term `v` depends on first (§4.2.2 step 4.2 of IRI expansion).
            let dep = if local.contains_key(v) { Some(v.to_owned()) } else { v.split_once(':').map(|(p, _)| p.to_owned()) };
            if let Some(d) = dep
                && local.contains_key(&d)
                && defined.get(&d) != Some(&true)
            {
                this.define(result, terms, local, &d, defined, protected_default, override_protected)?;
                *scratch = Context { terms: Arc::new(terms.clone()), ..result.clone() };
            }
            Ok(expand_iri(scratch, v, true, None))
        };
        let type_mapping = match map.get("@type") {
            None => None,
            Some(Value::String(t)) => {
                let e = expand_local(self, &mut scratch, terms, defined, t)?
                    .ok_or_else(|| JsonLdError::InvalidContext(format!("invalid type mapping {}", shown(t))))?;
                if !(matches!(e.as_str(), "@id" | "@json" | "@none" | "@vocab") || is_absolute_iri(&e)) {
                    return Err(JsonLdError::InvalidContext(format!("invalid type mapping {}", shown(t))));
                }
                Some(e)
            }
            Some(_) => return Err(JsonLdError::InvalidContext("@type must be a string".into())),
        };
        let iri = match map.get("@id") {
            Some(Value::Null) => None,
            Some(Value::String(id)) if id != term => {
                if looks_like_keyword(id) && !is_keyword(id) {
                    None
                } else {
                    let e = expand_local(self, &mut scratch, terms, defined, id)?
                        .ok_or_else(|| JsonLdError::InvalidContext(format!("invalid iri mapping {}", shown(id))))?;
                    if !(is_keyword(&e) || is_absolute_iri(&e) || e.starts_with("_:")) {
                        return Err(JsonLdError::RelativeIri(shown(&e)));
                    }
                    if e == "@context" {
                        return Err(JsonLdError::InvalidContext("a term cannot map to @context".into()));
                    }
                    Some(e)
                }
            }
            Some(Value::String(_)) | None => {
                if let Some((prefix, suffix)) = term.split_once(':') {
                    if local.contains_key(prefix) && defined.get(prefix) != Some(&true) {
                        self.define(result, terms, local, prefix, defined, protected_default, override_protected)?;
                    }
                    match terms.get(prefix).and_then(|d| d.iri.clone()) {
                        Some(p) if !suffix.starts_with("//") => Some(format!("{p}{suffix}")),
                        _ if is_absolute_iri(term) || term.starts_with("_:") => Some(term.to_owned()),
                        _ => return Err(JsonLdError::RelativeIri(shown(term))),
                    }
                } else if term.contains('/') {
                    return Err(JsonLdError::RelativeIri(shown(term)));
                } else {
                    match &result.vocab {
                        Some(v) => Some(format!("{v}{term}")),
                        None => {
                            return Err(JsonLdError::InvalidContext(format!(
                                "term {} has no iri mapping and there is no @vocab",
                                shown(term)
                            )));
                        }
                    }
                }
            }
            Some(_) => return Err(JsonLdError::InvalidContext("@id must be a string or null".into())),
        };
        let prefix_flag = match map.get("@prefix") {
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(JsonLdError::InvalidContext("@prefix must be a boolean".into())),
            None => {
                simple
                    && !term.contains(':')
                    && !term.contains('/')
                    && iri.as_deref().is_some_and(|i| i.ends_with([':', '/', '?', '#', '[', ']', '@']))
            }
        };
        let container = match map.get("@container") {
            None => Vec::new(),
            Some(c) => {
                let list: Vec<String> = match c {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<_>>().unwrap_or_default(),
                    _ => return Err(JsonLdError::InvalidContext("invalid @container".into())),
                };
                for c in &list {
                    match c.as_str() {
                        "@set" | "@list" | "@graph" => {}
                        "@language" | "@index" | "@id" | "@type" => {
                            return Err(JsonLdError::Unsupported(format!("{c} containers (term {})", shown(term))));
                        }
                        _ => return Err(JsonLdError::InvalidContext(format!("invalid container {}", shown(c)))),
                    }
                }
                let mut list = list;
                list.sort();
                list.dedup();
                list
            }
        };
        let language = match map.get("@language") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(l)) => Some(Some(l.to_ascii_lowercase())),
            Some(_) => return Err(JsonLdError::InvalidContext("@language must be a string or null".into())),
        };
        let context = map.get("@context").cloned();
        let def = TermDef { iri, prefix: prefix_flag, protected, type_mapping, container, context, language };
        let def = match previous {
            Some(prev) if prev.protected && !override_protected => {
                if !prev.same_as(&def) {
                    return Err(JsonLdError::ProtectedTermRedefinition(shown(term)));
                }
                prev
            }
            _ => def,
        };
        terms.insert(term.to_owned(), def);
        defined.insert(term.to_owned(), true);
        Ok(())
    }
}

/// IRI expansion (§5.2) against a processed context. `vocab` selects vocabulary-relative
/// expansion (property names, types); otherwise the value is document-relative, and since
/// there is no base IRI a relative reference is returned unchanged (and refused later).
/// None: the value maps to nothing (a null mapping or a reserved `@…` form).
fn expand_iri(active: &Context, value: &str, vocab: bool, _unused: Option<()>) -> Option<String> {
    if is_keyword(value) {
        return Some(value.to_owned());
    }
    if looks_like_keyword(value) {
        return None;
    }
    if vocab && let Some(def) = active.term(value) {
        return def.iri.clone();
    }
    if let Some((prefix, suffix)) = value.split_once(':')
        && !prefix.is_empty()
    {
        if prefix == "_" || suffix.starts_with("//") {
            return Some(value.to_owned());
        }
        if let Some(def) = active.term(prefix)
            && def.prefix
            && let Some(p) = &def.iri
        {
            return Some(format!("{p}{suffix}"));
        }
        if is_absolute_iri(value) {
            return Some(value.to_owned());
        }
    }
    if vocab && let Some(v) = &active.vocab {
        return Some(format!("{v}{value}"));
    }
    Some(value.to_owned())
}

/// The expansion algorithm (§5.1), with a depth bound.
struct Expander {
    depth: usize,
}

fn as_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        v => vec![v],
    }
}

/// Expands `document` (JSON-LD 1.1 §5.1) and returns the expanded array.
pub fn expand(document: &Value) -> Result<Vec<Value>, JsonLdError> {
    let mut ex = Expander { depth: 0 };
    let out = ex.expand(&Context::default(), None, document, false)?;
    let out = match out {
        Value::Object(mut m) if m.len() == 1 && m.contains_key("@graph") => m.remove("@graph").unwrap_or(Value::Null),
        v => v,
    };
    Ok(as_array(out))
}

impl Expander {
    fn expand(&mut self, active: &Context, prop: Option<&str>, element: &Value, from_map: bool) -> Result<Value, JsonLdError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(JsonLdError::TooLarge("nesting depth"));
        }
        let r = self.expand_inner(active, prop, element, from_map);
        self.depth -= 1;
        r
    }

    fn expand_inner(&mut self, active: &Context, prop: Option<&str>, element: &Value, from_map: bool) -> Result<Value, JsonLdError> {
        let prop_def = prop.and_then(|p| active.term(p)).cloned();
        let scoped = prop_def.as_ref().and_then(|d| d.context.clone());
        match element {
            Value::Null => Ok(Value::Null),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let e = self.expand(active, prop, item, from_map)?;
                    if prop_def.as_ref().is_some_and(|d| d.container.iter().any(|c| c == "@list")) && e.is_array() {
                        return Err(JsonLdError::Unsupported("lists of lists".into()));
                    }
                    match e {
                        Value::Array(a) => out.extend(a),
                        Value::Null => {}
                        v => out.push(v),
                    }
                }
                Ok(Value::Array(out))
            }
            Value::Object(map) => self.expand_map(active, prop, prop_def.as_ref(), scoped.as_ref(), map, from_map),
            scalar => {
                if prop.is_none() || prop == Some("@graph") {
                    return Ok(Value::Null);
                }
                let ctx;
                let active = match &scoped {
                    Some(s) => {
                        ctx = process_context(active, s, true, true)?;
                        &ctx
                    }
                    None => active,
                };
                expand_value(active, prop.unwrap_or_default(), scalar)
            }
        }
    }

    fn expand_map(
        &mut self,
        active: &Context,
        prop: Option<&str>,
        prop_def: Option<&TermDef>,
        scoped: Option<&Value>,
        map: &Map<String, Value>,
        from_map: bool,
    ) -> Result<Value, JsonLdError> {
        let mut active = active.clone();
        // §5.1.2 step 7: revert a non-propagated (type-scoped) context, except for value
        // objects and node references.
        if let Some(prev) = &active.previous
            && !from_map
        {
            let keys: Vec<Option<String>> = map.keys().map(|k| expand_iri(&active, k, true, None)).collect();
            let is_value = keys.iter().any(|k| k.as_deref() == Some("@value"));
            let is_ref = keys.len() == 1 && keys.first().is_some_and(|k| k.as_deref() == Some("@id"));
            if !is_value && !is_ref {
                active = (**prev).clone();
            }
        }
        if let Some(s) = scoped {
            active = process_context(&active, s, true, true)?;
        }
        if let Some(c) = map.get("@context") {
            active = process_context(&active, c, false, true)?;
        }
        let type_scoped = active.clone();
        // Type-scoped contexts, from the type values in lexicographic order (step 11).
        let mut type_keys: Vec<&String> = map.keys().filter(|k| expand_iri(&active, k, true, None).as_deref() == Some("@type")).collect();
        type_keys.sort();
        for k in type_keys {
            let mut types: Vec<&str> = match map.get(k) {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            types.sort_unstable();
            for t in types {
                if let Some(c) = type_scoped.term(t).and_then(|d| d.context.clone()) {
                    active = process_context(&active, &c, false, false)?;
                }
            }
        }
        let mut result: BTreeMap<String, Value> = BTreeMap::new();
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            let Some(value) = map.get(key) else { continue };
            if key == "@context" {
                continue;
            }
            let Some(expanded) = expand_iri(&active, key, true, None) else {
                if looks_like_keyword(key) {
                    continue;
                }
                return Err(JsonLdError::UndefinedTerm(shown(key)));
            };
            if is_keyword(&expanded) {
                if result.contains_key(&expanded) && expanded != "@type" {
                    return Err(JsonLdError::Invalid(format!("colliding keywords {}", shown(&expanded))));
                }
                let v = match expanded.as_str() {
                    "@id" => match value {
                        Value::String(s) => Value::String(expand_iri(&active, s, false, None).unwrap_or_default()),
                        _ => return Err(JsonLdError::Invalid("@id must be a string".into())),
                    },
                    "@type" => {
                        let list: Vec<&Value> = match value {
                            Value::Array(a) => a.iter().collect(),
                            v => vec![v],
                        };
                        let mut out = Vec::new();
                        for t in list {
                            let Some(t) = t.as_str() else { return Err(JsonLdError::Invalid("@type values must be strings".into())) };
                            out.push(Value::String(expand_iri(&type_scoped, t, true, None).unwrap_or_default()));
                        }
                        if let Some(Value::Array(prev)) = result.remove("@type") {
                            out.splice(0..0, prev);
                        }
                        Value::Array(out)
                    }
                    "@graph" => Value::Array(as_array(self.expand(&active, Some("@graph"), value, false)?)),
                    "@value" => match value {
                        Value::Array(_) | Value::Object(_) => {
                            if map.keys().any(|k| expand_iri(&active, k, true, None).as_deref() == Some("@type"))
                                && map.values().any(|v| v == "@json")
                            {
                                value.clone()
                            } else {
                                return Err(JsonLdError::Invalid("invalid @value".into()));
                            }
                        }
                        v => v.clone(),
                    },
                    "@language" => match value {
                        Value::String(s) => Value::String(s.clone()),
                        _ => return Err(JsonLdError::Invalid("@language must be a string".into())),
                    },
                    "@index" => match value {
                        Value::String(s) => Value::String(s.clone()),
                        _ => return Err(JsonLdError::Invalid("@index must be a string".into())),
                    },
                    "@list" => {
                        if prop.is_none() || prop == Some("@graph") {
                            continue;
                        }
                        Value::Array(as_array(self.expand(&active, prop, value, false)?))
                    }
                    "@set" => self.expand(&active, prop, value, false)?,
                    "@context" => continue,
                    other => return Err(JsonLdError::Unsupported(format!("{other} in a document"))),
                };
                result.insert(expanded, v);
                continue;
            }
            if !expanded.contains(':') {
                return Err(JsonLdError::UndefinedTerm(shown(key)));
            }
            let def = active.term(key).cloned();
            let container = def.as_ref().map(|d| d.container.clone()).unwrap_or_default();
            let ev = if def.as_ref().and_then(|d| d.type_mapping.as_deref()) == Some("@json") {
                let mut m = Map::new();
                m.insert("@value".into(), value.clone());
                m.insert("@type".into(), Value::String("@json".into()));
                Value::Object(m)
            } else {
                self.expand(&active, Some(key), value, false)?
            };
            if ev.is_null() {
                continue;
            }
            let ev = if container.iter().any(|c| c == "@list") && ev.get("@list").is_none() {
                let mut m = Map::new();
                m.insert("@list".into(), Value::Array(as_array(ev)));
                Value::Object(m)
            } else {
                ev
            };
            let ev = if container.iter().any(|c| c == "@graph") {
                Value::Array(
                    as_array(ev)
                        .into_iter()
                        .map(|v| {
                            let mut m = Map::new();
                            m.insert("@graph".into(), Value::Array(as_array(v)));
                            Value::Object(m)
                        })
                        .collect(),
                )
            } else {
                ev
            };
            let slot = result.entry(expanded).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = slot {
                a.extend(as_array(ev));
            }
        }
        let _ = prop_def;
        // Post-processing (§5.1.2 steps 15-19).
        if result.contains_key("@value") {
            if result.keys().any(|k| !matches!(k.as_str(), "@value" | "@type" | "@language" | "@index")) {
                return Err(JsonLdError::Invalid("invalid value object".into()));
            }
            if result.get("@value").is_some_and(Value::is_null) {
                return Ok(Value::Null);
            }
            if let Some(Value::Array(t)) = result.remove("@type") {
                let [t] = <[Value; 1]>::try_from(t).map_err(|_| JsonLdError::Invalid("a value has one @type".into()))?;
                let ts = t.as_str().unwrap_or_default();
                if ts != "@json" && !is_absolute_iri(ts) {
                    return Err(JsonLdError::RelativeIri(shown(ts)));
                }
                result.insert("@type".into(), t);
            }
            if result.contains_key("@language") && !result.get("@value").is_some_and(Value::is_string) {
                return Err(JsonLdError::Invalid("a language-tagged value must be a string".into()));
            }
        } else if result.contains_key("@list") || result.contains_key("@set") {
            if result.keys().any(|k| !matches!(k.as_str(), "@list" | "@set" | "@index")) {
                return Err(JsonLdError::Invalid("invalid list or set object".into()));
            }
            if let Some(s) = result.remove("@set") {
                return Ok(s);
            }
        }
        if result.len() == 1 && result.contains_key("@language") {
            return Ok(Value::Null);
        }
        if prop.is_none() || prop == Some("@graph") {
            let only_id = result.len() == 1 && result.contains_key("@id");
            if result.is_empty() || result.contains_key("@value") || result.contains_key("@list") || only_id {
                return Ok(Value::Null);
            }
        }
        Ok(Value::Object(result.into_iter().collect()))
    }
}

/// Value expansion (§5.3).
fn expand_value(active: &Context, prop: &str, value: &Value) -> Result<Value, JsonLdError> {
    let def = active.term(prop);
    let tm = def.and_then(|d| d.type_mapping.as_deref());
    let mut m = Map::new();
    match (tm, value) {
        (Some("@id"), Value::String(s)) => {
            m.insert("@id".into(), Value::String(expand_iri(active, s, false, None).unwrap_or_default()));
            return Ok(Value::Object(m));
        }
        (Some("@vocab"), Value::String(s)) => {
            m.insert("@id".into(), Value::String(expand_iri(active, s, true, None).unwrap_or_default()));
            return Ok(Value::Object(m));
        }
        _ => {}
    }
    m.insert("@value".into(), value.clone());
    match tm {
        Some(t) if !matches!(t, "@id" | "@vocab" | "@none") => {
            m.insert("@type".into(), Value::String(t.to_owned()));
        }
        _ => {
            if value.is_string() {
                let lang = match def.and_then(|d| d.language.clone()) {
                    Some(l) => l,
                    None => active.language.clone(),
                };
                if let Some(l) = lang {
                    m.insert("@language".into(), Value::String(l));
                }
            }
        }
    }
    Ok(Value::Object(m))
}

// ---------------------------------------------------------------------------------------
// RDF (§8)
// ---------------------------------------------------------------------------------------

/// An RDF term.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Term {
    Iri(String),
    Blank(String),
    Literal { value: String, datatype: String, language: Option<String> },
}

/// A quad; `graph` None is the default graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quad {
    pub subject: Term,
    pub predicate: String,
    pub object: Term,
    pub graph: Option<Term>,
}

/// Expands `document` and deserialises it to RDF (§8.1), in safe mode: a relative IRI as a
/// subject, predicate, object, type or graph name is an error. The quads are returned
/// sorted and without duplicates (an RDF dataset is a set).
pub fn to_rdf(document: &Value) -> Result<Vec<Quad>, JsonLdError> {
    let expanded = expand(document)?;
    let mut w = RdfWriter { quads: std::collections::BTreeSet::new(), blank: HashMap::new(), counter: 0 };
    for node in &expanded {
        if let Value::Object(m) = node {
            w.node(m, None)?;
        }
    }
    Ok(w.quads.into_iter().collect())
}

struct RdfWriter {
    quads: std::collections::BTreeSet<Quad>,
    blank: HashMap<String, String>,
    counter: u64,
}

impl RdfWriter {
    fn fresh(&mut self) -> Term {
        self.counter += 1;
        Term::Blank(format!("b{}", self.counter))
    }

    fn id_term(&mut self, id: &str) -> Result<Term, JsonLdError> {
        if let Some(label) = id.strip_prefix("_:") {
            if let Some(l) = self.blank.get(label) {
                return Ok(Term::Blank(l.clone()));
            }
            let t = self.fresh();
            if let Term::Blank(l) = &t {
                self.blank.insert(label.to_owned(), l.clone());
            }
            return Ok(t);
        }
        if is_absolute_iri(id) { Ok(Term::Iri(id.to_owned())) } else { Err(JsonLdError::RelativeIri(shown(id))) }
    }

    fn push(&mut self, q: Quad) -> Result<(), JsonLdError> {
        if self.quads.len() >= MAX_QUADS {
            return Err(JsonLdError::TooLarge("quads"));
        }
        self.quads.insert(q);
        Ok(())
    }

    fn node(&mut self, node: &Map<String, Value>, graph: Option<&Term>) -> Result<Term, JsonLdError> {
        let subject = match node.get("@id") {
            Some(Value::String(id)) => self.id_term(id)?,
            _ => self.fresh(),
        };
        if let Some(Value::Array(types)) = node.get("@type") {
            for t in types {
                let t = self.id_term(t.as_str().unwrap_or_default())?;
                self.push(Quad { subject: subject.clone(), predicate: RDF_TYPE.into(), object: t, graph: graph.cloned() })?;
            }
        }
        if let Some(Value::Array(items)) = node.get("@graph") {
            for item in items {
                if let Value::Object(m) = item
                    && !m.contains_key("@value")
                    && !m.contains_key("@list")
                {
                    self.node(m, Some(&subject))?;
                }
            }
        }
        for (p, values) in node {
            if p.starts_with('@') {
                continue;
            }
            if p.starts_with("_:") {
                // A blank node predicate is generalized RDF: not produced (§8.1).
                continue;
            }
            if !is_absolute_iri(p) {
                return Err(JsonLdError::RelativeIri(shown(p)));
            }
            for v in values.as_array().map(Vec::as_slice).unwrap_or_default() {
                if let Some(o) = self.object(v, graph)? {
                    self.push(Quad { subject: subject.clone(), predicate: p.clone(), object: o, graph: graph.cloned() })?;
                }
            }
        }
        Ok(subject)
    }

    fn object(&mut self, v: &Value, graph: Option<&Term>) -> Result<Option<Term>, JsonLdError> {
        let Value::Object(m) = v else { return Ok(None) };
        if m.contains_key("@value") {
            return literal(m).map(Some);
        }
        if let Some(list) = m.get("@list") {
            let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
            let mut objects = Vec::with_capacity(items.len());
            for item in items {
                if let Some(o) = self.object(item, graph)? {
                    objects.push(o);
                }
            }
            if objects.is_empty() {
                return Ok(Some(Term::Iri(RDF_NIL.into())));
            }
            let heads: Vec<Term> = objects.iter().map(|_| self.fresh()).collect();
            for (i, (head, o)) in heads.iter().zip(objects).enumerate() {
                self.push(Quad { subject: head.clone(), predicate: RDF_FIRST.into(), object: o, graph: graph.cloned() })?;
                let rest = heads.get(i + 1).cloned().unwrap_or_else(|| Term::Iri(RDF_NIL.into()));
                self.push(Quad { subject: head.clone(), predicate: RDF_REST.into(), object: rest, graph: graph.cloned() })?;
            }
            return Ok(heads.into_iter().next());
        }
        self.node(m, graph).map(Some)
    }
}

/// The canonical lexical form of an xsd:double (§8.6 step 10): `1.1E0`, `5.3E-10`.
fn canonical_double(f: f64) -> String {
    let s = format!("{f:.15e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mantissa = match mantissa.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            format!("{int}.{}", if frac.is_empty() { "0" } else { frac })
        }
        None => format!("{mantissa}.0"),
    };
    format!("{mantissa}E{exp}")
}

fn literal(m: &Map<String, Value>) -> Result<Term, JsonLdError> {
    let value = m.get("@value").unwrap_or(&Value::Null);
    let datatype = m.get("@type").and_then(Value::as_str);
    let language = m.get("@language").and_then(Value::as_str);
    if datatype == Some("@json") {
        let canon = serde_jcs::to_string(value).map_err(|e| JsonLdError::Invalid(format!("json literal: {e}")))?;
        return Ok(Term::Literal { value: canon, datatype: RDF_JSON.into(), language: None });
    }
    let (lexical, default_type) = match value {
        Value::Bool(b) => (b.to_string(), XSD_BOOLEAN),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let integral = n.is_i64() || n.is_u64() || (f.fract() == 0.0 && f.abs() < 1e21);
            if integral && datatype != Some(XSD_DOUBLE) {
                let s = if let Some(i) = n.as_i64() {
                    i.to_string()
                } else if let Some(u) = n.as_u64() {
                    u.to_string()
                } else {
                    format!("{f:.0}")
                };
                (s, XSD_INTEGER)
            } else if f.is_finite() {
                (canonical_double(f), XSD_DOUBLE)
            } else {
                return Err(JsonLdError::Invalid("non-finite number".into()));
            }
        }
        Value::String(s) => (s.clone(), XSD_STRING),
        _ => return Err(JsonLdError::Invalid("a @value must be a scalar".into())),
    };
    if let Some(l) = language {
        return Ok(Term::Literal { value: lexical, datatype: RDF_LANGSTRING.into(), language: Some(l.to_owned()) });
    }
    let datatype = datatype.unwrap_or(default_type);
    if !is_absolute_iri(datatype) {
        return Err(JsonLdError::RelativeIri(shown(datatype)));
    }
    Ok(Term::Literal { value: lexical, datatype: datatype.to_owned(), language: None })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn doubles_have_the_canonical_form() {
        assert_eq!(canonical_double(1.1), "1.1E0");
        assert_eq!(canonical_double(1.0e21), "1.0E21");
        assert_eq!(canonical_double(0.000001), "1.0E-6");
        assert_eq!(canonical_double(-5.3e-10), "-5.3E-10");
    }

    #[test]
    fn undefined_terms_and_unknown_contexts_are_refused() {
        let doc =
            json!({"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"], "id": "urn:x:1", "bogus": 1});
        assert!(matches!(to_rdf(&doc), Err(JsonLdError::UndefinedTerm(t)) if t == "bogus"));
        let doc = json!({"@context": ["https://example.com/evil/v1"], "id": "urn:x:1"});
        assert!(matches!(to_rdf(&doc), Err(JsonLdError::UnknownContext(_))));
        let doc =
            json!({"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential", "Unknown"], "id": "urn:x:1"});
        assert!(matches!(to_rdf(&doc), Err(JsonLdError::RelativeIri(t)) if t == "Unknown"));
    }

    #[test]
    fn protected_terms_cannot_be_redefined() {
        let doc = json!({"@context": ["https://www.w3.org/ns/credentials/v2", {"name": "https://evil.example/name"}], "id": "urn:x:1", "name": "x"});
        assert!(matches!(to_rdf(&doc), Err(JsonLdError::ProtectedTermRedefinition(t)) if t == "name"));
        // The same definition again is allowed (data-integrity v2 after credentials v2).
        let doc = json!({"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/security/data-integrity/v2"], "id": "urn:x:1", "name": "x"});
        assert_eq!(to_rdf(&doc).unwrap().len(), 1);
    }

    #[test]
    fn lists_graphs_and_json_literals() {
        let doc = json!({
            "@context": {"@vocab": "https://ex.org/", "l": {"@container": "@list"}, "g": {"@container": "@graph"}, "j": {"@type": "@json"}},
            "@id": "https://ex.org/s", "l": [1, 2.5, true], "g": {"@id": "https://ex.org/inner", "p": "v"}, "j": {"b": 1, "a": [1e21]}
        });
        let q = to_rdf(&doc).unwrap();
        assert!(q.iter().any(|q| q.object == Term::Literal { value: "2.5E0".into(), datatype: XSD_DOUBLE.into(), language: None }));
        assert!(
            q.iter()
                .any(|q| q.object == Term::Literal { value: "{\"a\":[1e+21],\"b\":1}".into(), datatype: RDF_JSON.into(), language: None })
        );
        assert!(q.iter().any(|q| q.graph.is_some() && q.subject == Term::Iri("https://ex.org/inner".into())));
        assert_eq!(q.iter().filter(|q| q.predicate == RDF_FIRST).count(), 3);
    }
}
