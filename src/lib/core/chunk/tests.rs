//! Round trips of any payload through split and reassembly, and the
//! rejections and framing errors a receiver reports.

use proptest::prelude::*;

use super::*;

fn header(id: MessageId, payload: &[u8]) -> ChunkHeader {
    ChunkHeader {
        meta: MessageMeta {
            id,
            origin: NodeId::parse("origin").unwrap(),
            hops: 0,
            ttl: 0,
            topic: String::new(),
            created_unix_ns: 0,
            auth: None,
            piece: None,
        },
        sender: NodeId::parse("sender").unwrap(),
        total_len: payload.len() as u64,
        crc32: crc32fast::hash(payload),
    }
}

fn chunks_of(id: MessageId, payload: &Bytes, max_chunk: usize) -> Vec<ChunkIn> {
    split(payload, max_chunk)
        .map(|(offset, data)| ChunkIn {
            id,
            header: (offset == 0).then(|| header(id, payload)),
            offset,
            data,
        })
        .collect()
}

fn feed_all(r: &mut Reassembler, chunks: Vec<ChunkIn>) -> Vec<Fed> {
    chunks.into_iter().map(|c| r.feed(c).unwrap()).collect()
}

proptest! {
    #[test]
    fn any_payload_round_trips_exactly(len in 0usize..300_000, max_chunk in 1usize..70_000) {
        let payload: Bytes = (0..len).map(|i| u8::try_from(i * 31 % 251).unwrap()).collect::<Vec<_>>().into();
        let id = MessageId::new();
        let mut r = Reassembler::new(1 << 30, max_chunk);
        let fed = feed_all(&mut r, chunks_of(id, &payload, max_chunk));
        let (last, rest) = fed.split_last().unwrap();
        prop_assert!(rest.iter().all(|f| matches!(f, Fed::Pending)));
        match last {
            Fed::Complete(m) => prop_assert_eq!(&m.payload, &payload),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        prop_assert!(!r.is_mid_message());
    }
}

#[test]
fn sizes_from_zero_to_64_mib_round_trip() {
    for len in [0, 1, 1 << 20, (1 << 20) + 1, 20 << 20, 64 << 20] {
        let payload = Bytes::from(vec![0xA5u8; len]);
        let id = MessageId::new();
        let mut r = Reassembler::new(64 << 20, 1 << 20);
        let fed = feed_all(&mut r, chunks_of(id, &payload, 1 << 20));
        let Some(Fed::Complete(m)) = fed.into_iter().last() else {
            panic!("{len} bytes did not complete");
        };
        assert_eq!(m.payload.len(), len);
        assert_eq!(m.payload, payload);
    }
}

#[test]
fn single_chunk_payload_is_not_copied() {
    let payload = Bytes::from(vec![7u8; 1000]);
    let id = MessageId::new();
    let mut r = Reassembler::new(1 << 20, 4096);
    let mut fed = feed_all(&mut r, chunks_of(id, &payload, 4096));
    let Some(Fed::Complete(m)) = fed.pop() else {
        panic!("not complete")
    };
    assert_eq!(m.payload.as_ptr(), payload.as_ptr());
}

#[test]
fn oversized_message_is_rejected_once_then_skipped_and_the_next_one_works() {
    let big = Bytes::from(vec![1u8; 10_000]);
    let small = Bytes::from_static(b"hello");
    let mut r = Reassembler::new(4096, 1024);
    let big_id = MessageId::new();
    let fed = feed_all(&mut r, chunks_of(big_id, &big, 1024));
    assert!(matches!(
        &fed[0],
        Fed::Rejected { id, reason: Rejection::TooLarge { len: 10_000, max: 4096 } } if *id == big_id
    ));
    assert!(fed[1..].iter().all(|f| matches!(f, Fed::Pending)));
    let fed = feed_all(&mut r, chunks_of(MessageId::new(), &small, 1024));
    assert!(matches!(&fed[0], Fed::Complete(m) if m.payload == small));
}

#[test]
fn corrupted_payload_is_rejected_by_checksum() {
    let payload = Bytes::from(vec![3u8; 3000]);
    let id = MessageId::new();
    let mut chunks = chunks_of(id, &payload, 1024);
    chunks[1].data = Bytes::from(vec![4u8; 1024]);
    let mut r = Reassembler::new(1 << 20, 1024);
    let fed = feed_all(&mut r, chunks);
    assert!(matches!(
        fed.last(),
        Some(Fed::Rejected {
            reason: Rejection::Checksum { .. },
            ..
        })
    ));
}

#[test]
fn framing_violations_are_protocol_errors() {
    let payload = Bytes::from(vec![0u8; 3000]);
    let id = MessageId::new();
    let chunks = chunks_of(id, &payload, 1024);

    // Missing header.
    let mut r = Reassembler::new(1 << 20, 1024);
    let mut c = chunks[0].clone();
    c.header = None;
    assert!(matches!(r.feed(c), Err(ProtocolError::Header { .. })));

    // Gap in offsets.
    let mut r = Reassembler::new(1 << 20, 1024);
    r.feed(chunks[0].clone()).unwrap();
    assert!(matches!(
        r.feed(chunks[2].clone()),
        Err(ProtocolError::Offset {
            expected: 1024,
            got: 2048,
            ..
        })
    ));

    // Another message cuts in.
    let mut r = Reassembler::new(1 << 20, 1024);
    r.feed(chunks[0].clone()).unwrap();
    let other = chunks_of(MessageId::new(), &payload, 1024);
    assert!(matches!(
        r.feed(other[0].clone()),
        Err(ProtocolError::Interleaved { .. })
    ));

    // Chunk over the limit.
    let mut r = Reassembler::new(1 << 20, 512);
    assert!(matches!(
        r.feed(chunks[0].clone()),
        Err(ProtocolError::ChunkTooLarge {
            len: 1024,
            max: 512
        })
    ));

    // More data than declared.
    let mut r = Reassembler::new(1 << 20, 4096);
    let mut c = chunks_of(id, &payload, 4096).remove(0);
    c.header.as_mut().unwrap().total_len = 10;
    assert!(matches!(r.feed(c), Err(ProtocolError::Overrun { .. })));
}
