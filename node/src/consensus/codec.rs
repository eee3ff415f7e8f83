//! The wire and WAL encodings of consensus messages (`specs/consensus.md` §7): one small,
//! hand-written, length-prefixed big-endian format for every type Malachite hands to the
//! network, the value-sync protocol and the write-ahead log. Decoding bounds every length
//! by the bytes actually present before allocating, and never panics on peer input.

use std::ops::RangeInclusive;

use arc_malachitebft_app_channel::app::consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use arc_malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::PeerId;
use arc_malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal, PolkaCertificate, PolkaSignature, Round,
    RoundCertificate, RoundCertificateType, RoundSignature, SignedMessage, ValidatorProof, Validity, VoteType,
};
use arc_malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use arc_malachitebft_sync::{ValueRequest, ValueResponse};
use bytes::Bytes;

use super::types::{Address, BlockHeader, DojangContext, Height, Proposal, ProposalPart, Signature, ValueId, Vote};

/// Most items in any decoded list (signatures, values, entries per part).
const MAX_ITEMS: usize = 1 << 20;

#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot decode consensus message: {0}")]
pub struct CodecError(pub String);

fn err(s: impl Into<String>) -> CodecError {
    CodecError(s.into())
}

/// Appends big-endian fields.
#[derive(Default, Debug)]
pub struct W(pub Vec<u8>);

impl W {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.raw(b)
    }
    /// A counted list of length-prefixed entries (proposal data, gossip, blocks).
    pub fn entries(&mut self, entries: &[Vec<u8>]) -> &mut Self {
        self.len(entries.len());
        for e in entries {
            self.bytes(e);
        }
        self
    }
    pub fn len(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX))
    }
    fn round(&mut self, r: Round) -> &mut Self {
        self.u64(r.as_i64() as u64)
    }
}

/// Reads big-endian fields, failing on truncation.
#[derive(Debug)]
pub struct R<'a> {
    b: &'a [u8],
}

impl<'a> R<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        R { b }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.b.len() < n {
            return Err(err(format!("truncated: needed {n} bytes, {} left", self.b.len())));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        self.arr::<4>().map(u32::from_be_bytes)
    }
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        self.arr::<8>().map(u64::from_be_bytes)
    }
    pub fn arr<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        self.take(N)?.try_into().map_err(|_| err("length"))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// The inverse of [`W::entries`]; the count is bounded by the bytes left.
    pub fn entries(&mut self) -> Result<Vec<Vec<u8>>, CodecError> {
        let n = self.len(4)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(self.bytes()?.to_vec());
        }
        Ok(entries)
    }
    /// A list length, bounded by the bytes left (each item takes at least `min_item`).
    pub fn len(&mut self, min_item: usize) -> Result<usize, CodecError> {
        let n = self.u32()? as usize;
        if n > MAX_ITEMS || n.saturating_mul(min_item.max(1)) > self.b.len() {
            return Err(err(format!("list of {n} items does not fit in {} bytes", self.b.len())));
        }
        Ok(n)
    }
    pub fn done(&self) -> Result<(), CodecError> {
        if self.b.is_empty() { Ok(()) } else { Err(err(format!("{} trailing bytes", self.b.len()))) }
    }
    fn round(&mut self) -> Result<Round, CodecError> {
        let v = self.u64()? as i64;
        match v {
            -1 => Ok(Round::Nil),
            r if (0..=i64::from(u32::MAX)).contains(&r) => Ok(Round::new(r as u32)),
            _ => Err(err(format!("bad round {v}"))),
        }
    }
    fn address(&mut self) -> Result<Address, CodecError> {
        self.arr().map(Address)
    }
    fn sig(&mut self) -> Result<Signature, CodecError> {
        self.arr().map(Signature)
    }
    fn value_id(&mut self) -> Result<ValueId, CodecError> {
        self.arr().map(ValueId)
    }
    fn header(&mut self) -> Result<BlockHeader, CodecError> {
        BlockHeader::decode(self.take(BlockHeader::ENCODED_LEN)?).ok_or_else(|| err("block header"))
    }
}

fn nil_or_val_w(w: &mut W, v: &NilOrVal<ValueId>) {
    match v {
        NilOrVal::Nil => {
            w.u8(0);
        }
        NilOrVal::Val(id) => {
            w.u8(1).raw(&id.0);
        }
    }
}

fn nil_or_val_r(r: &mut R<'_>) -> Result<NilOrVal<ValueId>, CodecError> {
    match r.u8()? {
        0 => Ok(NilOrVal::Nil),
        1 => Ok(NilOrVal::Val(r.value_id()?)),
        t => Err(err(format!("bad nil-or-value tag {t}"))),
    }
}

fn vote_type_w(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 1,
        VoteType::Precommit => 2,
    }
}

fn vote_type_r(r: &mut R<'_>) -> Result<VoteType, CodecError> {
    match r.u8()? {
        1 => Ok(VoteType::Prevote),
        2 => Ok(VoteType::Precommit),
        t => Err(err(format!("bad vote type {t}"))),
    }
}

fn extension_w(w: &mut W, e: &Option<SignedMessage<DojangContext, Vec<u8>>>) {
    match e {
        None => {
            w.u8(0);
        }
        Some(e) => {
            w.u8(1).bytes(&e.message).raw(&e.signature.0);
        }
    }
}

fn extension_r(r: &mut R<'_>) -> Result<Option<SignedMessage<DojangContext, Vec<u8>>>, CodecError> {
    match r.u8()? {
        0 => Ok(None),
        1 => {
            let m = r.bytes()?.to_vec();
            Ok(Some(SignedMessage::new(m, r.sig()?)))
        }
        t => Err(err(format!("bad extension tag {t}"))),
    }
}

fn vote_w(w: &mut W, v: &Vote) {
    w.u8(vote_type_w(v.vote_type)).u64(v.height.0).round(v.round);
    nil_or_val_w(w, &v.value);
    w.raw(&v.validator.0);
    extension_w(w, &v.extension);
}

fn vote_r(r: &mut R<'_>) -> Result<Vote, CodecError> {
    Ok(Vote {
        vote_type: vote_type_r(r)?,
        height: Height(r.u64()?),
        round: r.round()?,
        value: nil_or_val_r(r)?,
        validator: r.address()?,
        extension: extension_r(r)?,
    })
}

fn signed_vote_w(w: &mut W, v: &SignedMessage<DojangContext, Vote>) {
    vote_w(w, &v.message);
    w.raw(&v.signature.0);
}

fn signed_vote_r(r: &mut R<'_>) -> Result<SignedMessage<DojangContext, Vote>, CodecError> {
    let v = vote_r(r)?;
    Ok(SignedMessage::new(v, r.sig()?))
}

fn proposal_w(w: &mut W, p: &Proposal) {
    w.u64(p.height.0).round(p.round).raw(&p.value.encode()).round(p.pol_round).raw(&p.proposer.0);
}

fn proposal_r(r: &mut R<'_>) -> Result<Proposal, CodecError> {
    Ok(Proposal { height: Height(r.u64()?), round: r.round()?, value: r.header()?, pol_round: r.round()?, proposer: r.address()? })
}

fn part_w(w: &mut W, p: &ProposalPart) {
    match p {
        ProposalPart::Init { height, round, valid_round, proposer, header } => {
            w.u8(1).u64(height.0).round(*round).round(*valid_round).raw(&proposer.0).raw(&header.encode());
        }
        ProposalPart::Data(entries) => {
            w.u8(2).entries(entries);
        }
        ProposalPart::Fin(sig) => {
            w.u8(3).raw(&sig.0);
        }
        ProposalPart::Mempool(entries) => {
            w.u8(4).entries(entries);
        }
    }
}

fn part_r(r: &mut R<'_>) -> Result<ProposalPart, CodecError> {
    match r.u8()? {
        1 => Ok(ProposalPart::Init {
            height: Height(r.u64()?),
            round: r.round()?,
            valid_round: r.round()?,
            proposer: r.address()?,
            header: r.header()?,
        }),
        2 => Ok(ProposalPart::Data(r.entries()?)),
        3 => Ok(ProposalPart::Fin(r.sig()?)),
        4 => Ok(ProposalPart::Mempool(r.entries()?)),
        t => Err(err(format!("bad proposal part tag {t}"))),
    }
}

fn ext_cert_w(w: &mut W, c: &ExtendedCommitCertificate<DojangContext>) {
    w.u64(c.height.0).round(c.round).raw(&c.value_id.0).len(c.commit_signatures.len());
    for s in &c.commit_signatures {
        w.raw(&s.address.0).raw(&s.signature.0);
        extension_w(w, &s.extension);
    }
}

fn ext_cert_r(r: &mut R<'_>) -> Result<ExtendedCommitCertificate<DojangContext>, CodecError> {
    let height = Height(r.u64()?);
    let round = r.round()?;
    let value_id = r.value_id()?;
    let n = r.len(97)?;
    let mut commit_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let address = r.address()?;
        let signature = r.sig()?;
        commit_signatures.push(ExtendedCommitSignature::new(address, signature, extension_r(r)?));
    }
    Ok(ExtendedCommitCertificate { height, round, value_id, commit_signatures })
}

/// Encodes a commit certificate with its vote extensions, as stored per height.
pub fn encode_certificate(c: &ExtendedCommitCertificate<DojangContext>) -> Vec<u8> {
    let mut w = W::default();
    ext_cert_w(&mut w, c);
    w.0
}

pub fn decode_certificate(b: &[u8]) -> Result<ExtendedCommitCertificate<DojangContext>, CodecError> {
    let mut r = R::new(b);
    let c = ext_cert_r(&mut r)?;
    r.done()?;
    Ok(c)
}

/// A plain commit certificate (without extensions) in the same layout.
pub fn plain_certificate(c: &CommitCertificate<DojangContext>) -> ExtendedCommitCertificate<DojangContext> {
    ExtendedCommitCertificate {
        height: c.height,
        round: c.round,
        value_id: c.value_id,
        commit_signatures: c.commit_signatures.iter().map(|s| ExtendedCommitSignature::new(s.address, s.signature, None)).collect(),
    }
}

fn round_cert_type(t: &RoundCertificateType) -> u8 {
    match t {
        RoundCertificateType::Skip => 1,
        RoundCertificateType::Precommit => 2,
    }
}

/// The one codec for network, sync and WAL.
#[derive(Clone, Copy, Debug, Default)]
pub struct DojangCodec;

macro_rules! codec {
    ($t:ty, |$w:ident, $v:ident| $enc:block, |$r:ident| $dec:block) => {
        impl Codec<$t> for DojangCodec {
            type Error = CodecError;
            fn decode(&self, bytes: Bytes) -> Result<$t, CodecError> {
                let mut $r = R::new(&bytes);
                let out = $dec;
                $r.done()?;
                Ok(out)
            }
            fn encode(&self, $v: &$t) -> Result<Bytes, CodecError> {
                let mut $w = W::default();
                $enc;
                Ok(Bytes::from($w.0))
            }
        }
    };
}

codec!(ProposalPart, |w, v| { part_w(&mut w, v) }, |r| { part_r(&mut r)? });

codec!(
    SignedConsensusMsg<DojangContext>,
    |w, v| {
        match v {
            SignedConsensusMsg::Vote(sv) => {
                w.u8(1);
                signed_vote_w(&mut w, sv);
            }
            SignedConsensusMsg::Proposal(sp) => {
                w.u8(2);
                proposal_w(&mut w, &sp.message);
                w.raw(&sp.signature.0);
            }
        }
    },
    |r| {
        match r.u8()? {
            1 => SignedConsensusMsg::Vote(signed_vote_r(&mut r)?),
            2 => {
                let p = proposal_r(&mut r)?;
                SignedConsensusMsg::Proposal(SignedMessage::new(p, r.sig()?))
            }
            t => return Err(err(format!("bad consensus message tag {t}"))),
        }
    }
);

fn polka_w(w: &mut W, c: &PolkaCertificate<DojangContext>) {
    w.u64(c.height.0).round(c.round).raw(&c.value_id.0).len(c.polka_signatures.len());
    for s in &c.polka_signatures {
        w.raw(&s.address.0).raw(&s.signature.0);
    }
}

fn polka_r(r: &mut R<'_>) -> Result<PolkaCertificate<DojangContext>, CodecError> {
    let height = Height(r.u64()?);
    let round = r.round()?;
    let value_id = r.value_id()?;
    let n = r.len(96)?;
    let mut polka_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let a = r.address()?;
        polka_signatures.push(PolkaSignature::new(a, r.sig()?));
    }
    Ok(PolkaCertificate { height, round, value_id, polka_signatures })
}

codec!(
    LivenessMsg<DojangContext>,
    |w, v| {
        match v {
            LivenessMsg::Vote(sv) => {
                w.u8(1);
                signed_vote_w(&mut w, sv);
            }
            LivenessMsg::PolkaCertificate(c) => {
                w.u8(2);
                polka_w(&mut w, c);
            }
            LivenessMsg::SkipRoundCertificate(c) => {
                w.u8(3).u64(c.height.0).round(c.round).u8(round_cert_type(&c.cert_type)).len(c.round_signatures.len());
                for s in &c.round_signatures {
                    w.u8(vote_type_w(s.vote_type));
                    nil_or_val_w(&mut w, &s.value_id);
                    w.raw(&s.address.0).raw(&s.signature.0);
                }
            }
        }
    },
    |r| {
        match r.u8()? {
            1 => LivenessMsg::Vote(signed_vote_r(&mut r)?),
            2 => LivenessMsg::PolkaCertificate(polka_r(&mut r)?),
            3 => {
                let height = Height(r.u64()?);
                let round = r.round()?;
                let cert_type = match r.u8()? {
                    1 => RoundCertificateType::Skip,
                    2 => RoundCertificateType::Precommit,
                    t => return Err(err(format!("bad round certificate type {t}"))),
                };
                let n = r.len(98)?;
                let mut round_signatures = Vec::with_capacity(n);
                for _ in 0..n {
                    let vt = vote_type_r(&mut r)?;
                    let id = nil_or_val_r(&mut r)?;
                    let a = r.address()?;
                    round_signatures.push(RoundSignature::new(vt, id, a, r.sig()?));
                }
                LivenessMsg::SkipRoundCertificate(RoundCertificate { height, round, cert_type, round_signatures })
            }
            t => return Err(err(format!("bad liveness message tag {t}"))),
        }
    }
);

codec!(
    StreamMessage<ProposalPart>,
    |w, v| {
        w.bytes(&v.stream_id.to_bytes()).u64(v.sequence);
        match &v.content {
            StreamContent::Data(p) => {
                w.u8(1);
                part_w(&mut w, p);
            }
            StreamContent::Fin => {
                w.u8(2);
            }
        }
    },
    |r| {
        let id = StreamId::new(Bytes::copy_from_slice(r.bytes()?));
        let seq = r.u64()?;
        let content = match r.u8()? {
            1 => StreamContent::Data(part_r(&mut r)?),
            2 => StreamContent::Fin,
            t => return Err(err(format!("bad stream content tag {t}"))),
        };
        StreamMessage::new(id, seq, content)
    }
);

codec!(
    ValidatorProof<DojangContext>,
    |w, v| {
        w.bytes(&v.public_key).bytes(&v.peer_id).raw(&v.signature.0);
    },
    |r| {
        let pk = r.bytes()?.to_vec();
        let peer = r.bytes()?.to_vec();
        ValidatorProof::new(pk, peer, r.sig()?)
    }
);

codec!(
    Status<DojangContext>,
    |w, v| {
        w.bytes(&v.peer_id.to_bytes()).u64(v.tip_height.0).u64(v.history_min_height.0);
    },
    |r| {
        let peer_id = PeerId::from_bytes(r.bytes()?).map_err(|e| err(format!("peer id: {e}")))?;
        Status { peer_id, tip_height: Height(r.u64()?), history_min_height: Height(r.u64()?) }
    }
);

fn range_r(r: &mut R<'_>) -> Result<RangeInclusive<Height>, CodecError> {
    let a = Height(r.u64()?);
    Ok(a..=Height(r.u64()?))
}

codec!(
    Request<DojangContext>,
    |w, v| {
        let Request::ValueRequest(q) = v;
        w.u64(q.range.start().0).u64(q.range.end().0);
    },
    |r| { Request::ValueRequest(ValueRequest::new(range_r(&mut r)?)) }
);

codec!(
    Response<DojangContext>,
    |w, v| {
        let Response::ValueResponse(resp) = v;
        w.u64(resp.start_height.0).len(resp.values.len());
        for d in &resp.values {
            w.bytes(&d.value_bytes);
            ext_cert_w(&mut w, &d.certificate);
        }
    },
    |r| {
        let start = Height(r.u64()?);
        let n = r.len(60)?;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let vb = Bytes::copy_from_slice(r.bytes()?);
            values.push(RawDecidedValue::new(vb, ext_cert_r(&mut r)?));
        }
        Response::ValueResponse(ValueResponse::new(start, values))
    }
);

impl HasEncodedLen<Response<DojangContext>> for DojangCodec {
    fn encoded_len(&self, msg: &Response<DojangContext>) -> Result<usize, CodecError> {
        Codec::<Response<DojangContext>>::encode(self, msg).map(|b| b.len())
    }
}

codec!(
    ProposedValue<DojangContext>,
    |w, v| {
        w.u64(v.height.0).round(v.round).round(v.valid_round).raw(&v.proposer.0).raw(&v.value.encode()).u8(u8::from(v.validity.is_valid()));
    },
    |r| {
        ProposedValue {
            height: Height(r.u64()?),
            round: r.round()?,
            valid_round: r.round()?,
            proposer: r.address()?,
            value: r.header()?,
            validity: Validity::from_bool(r.u8()? == 1),
        }
    }
);

codec!(PolkaCertificate<DojangContext>, |w, v| { polka_w(&mut w, v) }, |r| { polka_r(&mut r)? });

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn roundtrip<T: Clone + PartialEq + std::fmt::Debug>(v: T)
    where
        DojangCodec: Codec<T>,
    {
        let b = DojangCodec.encode(&v).unwrap();
        assert_eq!(DojangCodec.decode(b.clone()).unwrap(), v);
        // Every strict prefix is refused, never a panic.
        for cut in 0..b.len() {
            assert!(DojangCodec.decode(b.slice(..cut)).is_err());
        }
    }

    proptest! {
        #[test]
        fn parts_and_votes_roundtrip(entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6), h in 1u64..1000, r in 0u32..5, ext in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..70))) {
            roundtrip(ProposalPart::Data(entries.clone()));
            roundtrip(ProposalPart::Mempool(entries));
            let header = BlockHeader { height: h, timestamp_ms: 5, proposer: Address([3; 32]), count: 2, entries_hash: [4; 32] };
            roundtrip(ProposalPart::Init { height: Height(h), round: Round::new(r), valid_round: Round::Nil, proposer: Address([3; 32]), header });
            roundtrip(ProposalPart::Fin(Signature([5; 64])));
            let v = Vote { vote_type: VoteType::Precommit, height: Height(h), round: Round::new(r), value: NilOrVal::Val(ValueId([1; 32])), validator: Address([2; 32]),
                extension: ext.map(|e| SignedMessage::new(e, Signature([6; 64]))) };
            roundtrip(SignedConsensusMsg::Vote(SignedMessage::new(v, Signature([7; 64]))));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let b = Bytes::from(b);
            let _ = Codec::<ProposalPart>::decode(&DojangCodec, b.clone());
            let _ = Codec::<SignedConsensusMsg<DojangContext>>::decode(&DojangCodec, b.clone());
            let _ = Codec::<LivenessMsg<DojangContext>>::decode(&DojangCodec, b.clone());
            let _ = Codec::<Response<DojangContext>>::decode(&DojangCodec, b.clone());
            let _ = Codec::<StreamMessage<ProposalPart>>::decode(&DojangCodec, b);
        }
    }

    #[test]
    fn certificates_roundtrip() {
        let c = ExtendedCommitCertificate::<DojangContext> {
            height: Height(9),
            round: Round::new(1),
            value_id: ValueId([8; 32]),
            commit_signatures: vec![
                ExtendedCommitSignature::new(
                    Address([1; 32]),
                    Signature([2; 64]),
                    Some(SignedMessage::new(vec![1, 2, 3], Signature([3; 64]))),
                ),
                ExtendedCommitSignature::new(Address([4; 32]), Signature([5; 64]), None),
            ],
        };
        assert_eq!(decode_certificate(&encode_certificate(&c)).unwrap(), c);
        let resp = Response::ValueResponse(ValueResponse::new(Height(9), vec![RawDecidedValue::new(Bytes::from_static(b"blk"), c)]));
        roundtrip(resp);
    }
}
