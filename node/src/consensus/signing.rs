//! Consensus signatures (`specs/consensus.md` §4): what exactly each vote, proposal,
//! vote extension, proposal stream and validator proof signs, and the Malachite
//! `Signer`/`Verifier` over them. Every signed message is domain-separated and bound to
//! the genesis hash, so a signature can never be replayed on another chain or as another
//! kind of message. Verification is ZIP 215 (`dojang_core::signature`), like entries.

use arc_malachitebft_app_channel::app::types::core::{NilOrVal, Round, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType};
use arc_malachitebft_app_channel::{Signer, Verifier};
use arc_malachitebft_signing::{Error as SigningError, VerificationResult};
use dojang_core::hash::Hash;
use ed25519_dalek::{Signer as _, SigningKey};

use super::types::{DojangContext, Height, Proposal, PublicKey, Signature, ValueId, Vote};

fn round_bytes(r: Round) -> [u8; 8] {
    r.as_i64().to_be_bytes()
}

/// The bytes a vote signature covers.
pub fn vote_bytes(genesis: &Hash, v: &Vote) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(b"dojang/vote/v1\0");
    b.extend_from_slice(&genesis.0);
    b.push(match v.vote_type {
        VoteType::Prevote => 1,
        VoteType::Precommit => 2,
    });
    b.extend_from_slice(&v.height.0.to_be_bytes());
    b.extend_from_slice(&round_bytes(v.round));
    match &v.value {
        NilOrVal::Nil => b.push(0),
        NilOrVal::Val(id) => {
            b.push(1);
            b.extend_from_slice(&id.0);
        }
    }
    b.extend_from_slice(&v.validator.0);
    b
}

/// The bytes a proposal signature covers.
pub fn proposal_bytes(genesis: &Hash, p: &Proposal) -> Vec<u8> {
    let mut b = Vec::with_capacity(192);
    b.extend_from_slice(b"dojang/proposal/v1\0");
    b.extend_from_slice(&genesis.0);
    b.extend_from_slice(&p.height.0.to_be_bytes());
    b.extend_from_slice(&round_bytes(p.round));
    b.extend_from_slice(&p.value.encode());
    b.extend_from_slice(&round_bytes(p.pol_round));
    b.extend_from_slice(&p.proposer.0);
    b
}

/// The bytes the engine-level vote-extension signature covers (the extension itself is a
/// checkpoint note signature, checked by the application).
pub fn extension_bytes(genesis: &Hash, scope: &VoteExtensionScope<DojangContext>, ext: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(160 + ext.len());
    b.extend_from_slice(b"dojang/vote-extension/v1\0");
    b.extend_from_slice(&genesis.0);
    b.extend_from_slice(&scope.height.0.to_be_bytes());
    b.extend_from_slice(&round_bytes(scope.round));
    b.extend_from_slice(&scope.value_id.0);
    b.extend_from_slice(&scope.validator_address.0);
    b.extend_from_slice(ext);
    b
}

/// The bytes a proposal stream's `Fin` signature covers.
pub fn stream_bytes(genesis: &Hash, height: Height, round: Round, id: &ValueId) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    b.extend_from_slice(b"dojang/proposal-stream/v1\0");
    b.extend_from_slice(&genesis.0);
    b.extend_from_slice(&height.0.to_be_bytes());
    b.extend_from_slice(&round_bytes(round));
    b.extend_from_slice(&id.0);
    b
}

fn proof_bytes(genesis: &Hash, preimage: &[u8]) -> Vec<u8> {
    [&b"dojang/validator-proof/v1\0"[..], &genesis.0, preimage].concat()
}

/// Verifies with ZIP 215 rules.
pub fn verify(key: &PublicKey, msg: &[u8], sig: &Signature) -> bool {
    dojang_core::signature::verify(&key.0, msg, &sig.0)
}

/// This validator's consensus signer. Holds the key; prints nothing of it.
#[derive(Clone)]
pub struct DojangSigner {
    key: SigningKey,
    genesis: Hash,
}

impl std::fmt::Debug for DojangSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DojangSigner").finish_non_exhaustive()
    }
}

impl DojangSigner {
    pub fn new(key: SigningKey, genesis: Hash) -> Self {
        DojangSigner { key, genesis }
    }

    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.key.sign(msg).to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }
}

/// Checks consensus signatures against genesis keys.
#[derive(Clone, Debug)]
pub struct DojangVerifier {
    pub genesis: Hash,
}

#[async_trait::async_trait]
impl Signer<DojangContext> for DojangSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<DojangContext, Vote>, SigningError> {
        let sig = self.sign(&vote_bytes(&self.genesis, &vote));
        Ok(SignedMessage::new(vote, sig))
    }

    async fn sign_proposal(&self, proposal: Proposal) -> Result<SignedMessage<DojangContext, Proposal>, SigningError> {
        let sig = self.sign(&proposal_bytes(&self.genesis, &proposal));
        Ok(SignedMessage::new(proposal, sig))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<DojangContext>,
        extension: Vec<u8>,
    ) -> Result<SignedMessage<DojangContext, Vec<u8>>, SigningError> {
        let sig = self.sign(&extension_bytes(&self.genesis, &scope, &extension));
        Ok(SignedMessage::new(extension, sig))
    }

    async fn sign_validator_proof(&self, public_key: Vec<u8>, peer_id: Vec<u8>) -> Result<ValidatorProof<DojangContext>, SigningError> {
        let pre = ValidatorProof::<DojangContext>::signing_bytes(&public_key, &peer_id);
        let sig = self.sign(&proof_bytes(&self.genesis, &pre));
        Ok(ValidatorProof::new(public_key, peer_id, sig))
    }
}

#[async_trait::async_trait]
impl Verifier<DojangContext> for DojangVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::from_bool(verify(public_key, &vote_bytes(&self.genesis, vote), signature)))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::from_bool(verify(public_key, &proposal_bytes(&self.genesis, proposal), signature)))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<DojangContext>,
        extension: &Vec<u8>,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::from_bool(verify(public_key, &extension_bytes(&self.genesis, scope, extension), signature)))
    }

    async fn verify_validator_proof(&self, proof: &ValidatorProof<DojangContext>) -> Result<VerificationResult, SigningError> {
        let Ok(key) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else { return Ok(VerificationResult::Invalid) };
        Ok(VerificationResult::from_bool(verify(&PublicKey(key), &proof_bytes(&self.genesis, &proof.preimage()), &proof.signature)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::consensus::types::Address;

    #[tokio::test]
    async fn votes_verify_only_unchanged_and_on_their_chain() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let g = Hash([1u8; 32]);
        let s = DojangSigner::new(key, g);
        let v = Vote {
            vote_type: VoteType::Precommit,
            height: Height(3),
            round: Round::new(0),
            value: NilOrVal::Val(ValueId([9u8; 32])),
            validator: Address(s.public_key().0),
            extension: None,
        };
        let signed = s.sign_vote(v.clone()).await.unwrap();
        let ver = DojangVerifier { genesis: g };
        assert!(ver.verify_signed_vote(&v, &signed.signature, &s.public_key()).await.unwrap().is_valid());
        let other = Vote { round: Round::new(1), ..v.clone() };
        assert!(ver.verify_signed_vote(&other, &signed.signature, &s.public_key()).await.unwrap().is_invalid());
        let other_chain = DojangVerifier { genesis: Hash([2u8; 32]) };
        assert!(other_chain.verify_signed_vote(&v, &signed.signature, &s.public_key()).await.unwrap().is_invalid());
    }
}
