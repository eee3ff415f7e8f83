//! RDF Dataset Canonicalization (RDFC-1.0) of the quads [`super::jsonld`] produces,
//! through the `rdf-canon` crate (`specs/credentials.md` §4.2).
//!
//! The crate implements RDFC-1.0 with SHA-256 and passes the W3C test suite (checked
//! below against `rdf-canon-w3c`). Poison datasets are bounded by a limit on calls of the
//! Hash N-Degree Quads algorithm ([`HNDQ_CALL_LIMIT`]).

use oxrdf::{BlankNode, GraphName, Literal, NamedNode, NamedOrBlankNode, Quad as OxQuad, Term as OxTerm};
use rdf_canon::{CanonicalizationOptions, canonicalize_quads_with};
use sha2::Sha256;

use super::jsonld::{Quad, Term};

/// Most Hash N-Degree Quads calls per canonicalisation (RDFC-1.0 §4.4 asks implementations
/// to bound the work poison graphs can cause). Credentials have a handful of blank nodes.
pub const HNDQ_CALL_LIMIT: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdfcError {
    #[error("invalid rdf term {0:?}")]
    Term(String),
    #[error("rdf canonicalization failed: {0}")]
    Canon(String),
}

fn named(iri: &str) -> Result<NamedNode, RdfcError> {
    NamedNode::new(iri).map_err(|_| RdfcError::Term(iri.chars().take(96).collect()))
}

fn blank(id: &str) -> Result<BlankNode, RdfcError> {
    BlankNode::new(id).map_err(|_| RdfcError::Term(id.chars().take(96).collect()))
}

fn subject(t: &Term) -> Result<NamedOrBlankNode, RdfcError> {
    match t {
        Term::Iri(i) => Ok(named(i)?.into()),
        Term::Blank(b) => Ok(blank(b)?.into()),
        Term::Literal { value, .. } => Err(RdfcError::Term(value.chars().take(96).collect())),
    }
}

fn object(t: &Term) -> Result<OxTerm, RdfcError> {
    match t {
        Term::Iri(i) => Ok(named(i)?.into()),
        Term::Blank(b) => Ok(blank(b)?.into()),
        Term::Literal { value, language: Some(l), .. } => Literal::new_language_tagged_literal(value.clone(), l.clone())
            .map(Into::into)
            .map_err(|_| RdfcError::Term(l.chars().take(96).collect())),
        Term::Literal { value, datatype, language: None } => Ok(Literal::new_typed_literal(value.clone(), named(datatype)?).into()),
    }
}

/// Converts quads to oxrdf's model.
pub fn to_oxrdf(quads: &[Quad]) -> Result<Vec<OxQuad>, RdfcError> {
    quads
        .iter()
        .map(|q| {
            let graph = match &q.graph {
                None => GraphName::DefaultGraph,
                Some(Term::Iri(i)) => named(i)?.into(),
                Some(Term::Blank(b)) => blank(b)?.into(),
                Some(Term::Literal { value, .. }) => return Err(RdfcError::Term(value.chars().take(96).collect())),
            };
            Ok(OxQuad::new(subject(&q.subject)?, named(&q.predicate)?, object(&q.object)?, graph))
        })
        .collect()
}

/// The canonical N-Quads of an oxrdf dataset (RDFC-1.0 with SHA-256).
pub fn canonicalize_ox(quads: &[OxQuad]) -> Result<String, RdfcError> {
    let options = CanonicalizationOptions { hndq_call_limit: Some(HNDQ_CALL_LIMIT) };
    canonicalize_quads_with::<Sha256>(quads, &options).map_err(|e| RdfcError::Canon(e.to_string()))
}

/// The canonical N-Quads of `quads`.
pub fn canonicalize(quads: &[Quad]) -> Result<String, RdfcError> {
    canonicalize_ox(&to_oxrdf(quads)?)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    /// A small N-Quads parser for the W3C test inputs (test support only).
    pub(crate) fn parse_nquads(text: &str) -> Vec<OxQuad> {
        text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).map(parse_line).collect()
    }

    fn parse_line(line: &str) -> OxQuad {
        let mut p = P { s: line.trim().as_bytes(), i: 0 };
        let s = p.term();
        let pred = p.term();
        let o = p.term();
        p.ws();
        let g = if p.peek() == b'.' { None } else { Some(p.term()) };
        let subject: NamedOrBlankNode = match s {
            OxTerm::NamedNode(n) => n.into(),
            OxTerm::BlankNode(b) => b.into(),
            _ => panic!("bad subject in {line}"),
        };
        let OxTerm::NamedNode(pred) = pred else { panic!("bad predicate in {line}") };
        let graph = match g {
            None => GraphName::DefaultGraph,
            Some(OxTerm::NamedNode(n)) => n.into(),
            Some(OxTerm::BlankNode(b)) => b.into(),
            _ => panic!("bad graph in {line}"),
        };
        OxQuad::new(subject, pred, o, graph)
    }

    /// IRIs may carry \\uXXXX and \\UXXXXXXXX escapes (N-Quads UCHAR).
    fn unescape_iri(raw: &str) -> String {
        let mut out = String::new();
        let mut rest = raw;
        while let Some(pos) = rest.find('\\') {
            out.push_str(&rest[..pos]);
            let n = if rest[pos + 1..].starts_with('u') { 4 } else { 8 };
            let hex = &rest[pos + 2..pos + 2 + n];
            out.push(char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap());
            rest = &rest[pos + 2 + n..];
        }
        out.push_str(rest);
        out
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn peek(&self) -> u8 {
            *self.s.get(self.i).unwrap_or(&0)
        }
        fn ws(&mut self) {
            while matches!(self.peek(), b' ' | b'\t') {
                self.i += 1;
            }
        }
        fn until(&mut self, stop: impl Fn(u8) -> bool) -> String {
            let start = self.i;
            while self.i < self.s.len() && !stop(self.peek()) {
                self.i += 1;
            }
            String::from_utf8(self.s[start..self.i].to_vec()).unwrap()
        }
        fn unescape_str(&mut self) -> String {
            let mut out = String::new();
            loop {
                let c = self.peek();
                self.i += 1;
                match c {
                    b'"' => return out,
                    b'\\' => {
                        let e = self.peek();
                        self.i += 1;
                        match e {
                            b't' => out.push('\t'),
                            b'b' => out.push('\u{8}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b'f' => out.push('\u{c}'),
                            b'"' => out.push('"'),
                            b'\'' => out.push('\''),
                            b'\\' => out.push('\\'),
                            b'u' | b'U' => {
                                let n = if e == b'u' { 4 } else { 8 };
                                let hex = std::str::from_utf8(&self.s[self.i..self.i + n]).unwrap();
                                self.i += n;
                                out.push(char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap());
                            }
                            _ => panic!("bad escape"),
                        }
                    }
                    _ => {
                        // Copy one UTF-8 character.
                        let start = self.i - 1;
                        let len = match c {
                            0..=0x7f => 1,
                            0xc0..=0xdf => 2,
                            0xe0..=0xef => 3,
                            _ => 4,
                        };
                        self.i = start + len;
                        out.push_str(std::str::from_utf8(&self.s[start..start + len]).unwrap());
                    }
                }
            }
        }
        fn term(&mut self) -> OxTerm {
            self.ws();
            match self.peek() {
                b'<' => {
                    self.i += 1;
                    let raw = self.until(|c| c == b'>');
                    self.i += 1;
                    NamedNode::new_unchecked(unescape_iri(&raw)).into()
                }
                b'_' => {
                    self.i += 2;
                    let id = self.until(|c| c == b' ' || c == b'\t');
                    BlankNode::new_unchecked(id).into()
                }
                b'"' => {
                    self.i += 1;
                    let value = self.unescape_str();
                    match self.peek() {
                        b'@' => {
                            self.i += 1;
                            let lang = self.until(|c| c == b' ' || c == b'\t');
                            Literal::new_language_tagged_literal_unchecked(value, lang).into()
                        }
                        b'^' => {
                            self.i += 3;
                            let dt = self.until(|c| c == b'>');
                            self.i += 1;
                            Literal::new_typed_literal(value, NamedNode::new_unchecked(unescape_iri(&dt))).into()
                        }
                        _ => Literal::new_simple_literal(value).into(),
                    }
                }
                c => panic!("unexpected {}", c as char),
            }
        }
    }

    /// W3C RDFC-1.0 test suite (w3c/rdf-canon `tests/`, commit 15619df2; read in place from
    /// `rdf-canon-w3c`): every evaluation test of the manifest gives the expected canonical
    /// N-Quads byte for byte; negative (poison) tests fail within the call limit.
    #[test]
    fn w3c_rdfc10_eval_tests() {
        let manifest = String::from_utf8(crate::testing::read_vector("rdf-canon-w3c/tests/manifest.csv")).unwrap();
        let mut passed = 0;
        for line in manifest.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            let (id, hash_alg, rdfc10) = (cols[0], cols[5], cols[6]);
            if rdfc10 != "TRUE" || !hash_alg.is_empty() {
                continue;
            }
            let input = String::from_utf8(crate::testing::read_vector(&format!("rdf-canon-w3c/tests/rdfc10/{id}-in.nq"))).unwrap();
            let expected_path = crate::testing::vectors_dir().join(format!("rdf-canon-w3c/tests/rdfc10/{id}-rdfc10.nq"));
            let quads = parse_nquads(&input);
            match std::fs::read_to_string(&expected_path) {
                Ok(expected) => {
                    let got = canonicalize_ox(&quads).unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(got, expected, "{id}");
                    passed += 1;
                }
                Err(_) => {
                    // A negative test (no expected output): the poison graph must be refused.
                    assert!(canonicalize_ox(&quads).is_err(), "{id} should exceed the call limit");
                }
            }
        }
        assert!(passed >= 50, "only {passed} rdfc10 eval tests ran");
    }
}
