//! Blocks: a header and its ordered entries, as value sync ships them and as each height
//! is stored (`specs/consensus.md` §6).

use super::codec::{CodecError, R, W};
use super::types::{BlockHeader, entries_hash};

/// A decided or proposed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub entries: Vec<Vec<u8>>,
}

impl Block {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W::default();
        w.raw(&self.header.encode()).entries(&self.entries);
        w.0
    }

    /// Decodes and checks that the entries match the header's count and hash.
    pub fn decode(b: &[u8]) -> Result<Block, CodecError> {
        let mut r = R::new(b);
        let header = BlockHeader::decode(r.take(BlockHeader::ENCODED_LEN)?).ok_or_else(|| CodecError("block header".into()))?;
        let entries = r.entries()?;
        r.done()?;
        let block = Block { header, entries };
        block.check()?;
        Ok(block)
    }

    /// The header commits to exactly these entries.
    pub fn check(&self) -> Result<(), CodecError> {
        if self.header.count as usize != self.entries.len() {
            return Err(CodecError(format!("header says {} entries, block has {}", self.header.count, self.entries.len())));
        }
        if entries_hash(self.entries.iter().map(Vec::as_slice)) != self.header.entries_hash {
            return Err(CodecError("entries do not match the header's entries_hash".into()));
        }
        Ok(())
    }
}

/// What a height stores: the block and its commit certificate with vote extensions.
pub fn encode_record(block: &[u8], certificate: &[u8]) -> Vec<u8> {
    let mut w = W::default();
    w.bytes(block).bytes(certificate);
    w.0
}

pub fn decode_record(b: &[u8]) -> Result<(&[u8], &[u8]), CodecError> {
    let mut r = R::new(b);
    let block = r.bytes()?;
    let cert = r.bytes()?;
    r.done()?;
    Ok((block, cert))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::consensus::types::Address;

    #[test]
    fn blocks_roundtrip_and_refuse_tampering() {
        let entries = vec![b"one".to_vec(), b"two".to_vec()];
        let header = BlockHeader {
            height: 4,
            timestamp_ms: 9,
            proposer: Address([1; 32]),
            count: 2,
            entries_hash: entries_hash(entries.iter().map(Vec::as_slice)),
        };
        let b = Block { header, entries };
        assert_eq!(Block::decode(&b.encode()).unwrap(), b);
        let mut bad = b.clone();
        bad.entries[1] = b"tw0".to_vec();
        assert!(Block::decode(&bad.encode()).is_err());
        let rec = encode_record(&b.encode(), b"cert");
        let (blk, cert) = decode_record(&rec).unwrap();
        assert_eq!(blk, b.encode().as_slice());
        assert_eq!(cert, b"cert");
    }
}
