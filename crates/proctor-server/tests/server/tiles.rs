//! The log as C2SP tlog-tiles over real HTTP, read by Proctor's own tile math and by an
//! independent client, Cloudflare's `tlog_tiles` crate (a port of Go's sumdb/tlog): the
//! checkpoint verifies with the log's vkey, every tile of the tree authenticates against the
//! checkpoint's root, inclusion and consistency proofs computed from the tiles verify, entry
//! bundles hold the exact leaves, full tiles are immutable and partial ones short-lived, and
//! receipts verify offline against a policy.

use std::collections::HashMap;

use proctor_attest::merkle::leaf_hash;
use proctor_attest::tiles::{Tile, TileKind, parse_entry_bundle};
use proctor_attest::tlog_policy::Policy;
use proctor_attest::tlog_proof::TlogProof;
use proctor_attest::{Checkpoint, SignatureType, Vkey};
use proctor_store::{JobId, LogSlot, NewJob, SignError, Store};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Body, TestDb, TestServer, str_of};

/// Entries in the test log: two full level-0 tiles and a partial one, a partial level-1 tile.
const ENTRIES: u64 = 600;

/// A queued job to copy (workers are off, so it stays queued) and the evaluator's token.
async fn queued_job(s: &TestServer) -> anyhow::Result<(NewJob, String)> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    let (status, job) = s.submit_arith(&evaluator, &model).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
    let id: JobId = str_of(&job, "id")?.parse()?;
    let job = s.store().job(id).await?;
    Ok((
        NewJob {
            evaluator: job.evaluator,
            eval: job.eval,
            dataset: job.dataset,
            model: job.model,
            policy_name: job.policy_name,
            policy_json: job.policy_json,
            policy_digest: job.policy_digest,
            concurrency: job.concurrency,
            seed: job.seed,
            total: job.total,
        },
        id.to_string(),
    ))
}

/// An entry of its own length (some long, so bundles are not uniform), naming its index.
fn entry_bytes(slot: LogSlot) -> Vec<u8> {
    let mut bytes = format!("entry {} ", slot.index).into_bytes();
    bytes.resize(bytes.len() + (slot.index as usize * 37) % 700, b'.');
    bytes
}

/// Appends pre-registrations straight through the store until the log has `size` entries.
async fn grow(store: &Store, job: &NewJob, size: u64) -> anyhow::Result<()> {
    while store.tree_head().await?.size < size {
        store
            .submit_job(job, |_, slot| Ok::<_, SignError>(entry_bytes(slot)))
            .await?;
    }
    Ok(())
}

/// GETs a path under the server; status, headers, body.
async fn get(
    s: &TestServer,
    path: &str,
) -> anyhow::Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
    let resp = s.client.get(format!("{}{path}", s.base)).send().await?;
    Ok((
        resp.status(),
        resp.headers().clone(),
        resp.bytes().await?.to_vec(),
    ))
}

/// The log's vkey from the server, and the checkpoint opened with it.
async fn checkpoint(s: &TestServer) -> anyhow::Result<(Vkey, Checkpoint, Vec<u8>)> {
    let (status, _, vkey) = get(s, "/v1/log/vkey").await?;
    anyhow::ensure!(status == StatusCode::OK, "{status}");
    let vkey = Vkey::parse(std::str::from_utf8(&vkey)?.trim_end())?;
    anyhow::ensure!(vkey.signature_type() == SignatureType::Ed25519);
    let (status, headers, note) = get(s, "/log/checkpoint").await?;
    anyhow::ensure!(status == StatusCode::OK, "{status}");
    anyhow::ensure!(headers["cache-control"] == "public, max-age=5");
    let checkpoint = Checkpoint::open(&note, vkey.key())?;
    anyhow::ensure!(checkpoint.origin == vkey.name());
    Ok((vkey, checkpoint, note))
}

#[tokio::test]
async fn the_tiles_are_read_by_an_independent_tlog_client() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        let s = TestServer::start(&db, 0).await?;
        let (job, _) = queued_job(&s).await?;
        grow(s.store(), &job, ENTRIES).await?;
        let (_, checkpoint, _) = checkpoint(&s).await?;
        assert_eq!(checkpoint.size, ENTRIES);

        // Every tile of the tree, as Proctor names them, with its caching.
        let mut fetched = HashMap::new();
        for tile in Tile::all_of(ENTRIES) {
            let (status, headers, bytes) = get(&s, &format!("/log/{}", tile.path())).await?;
            assert_eq!(status, StatusCode::OK, "{}", tile.path());
            assert_eq!(headers["content-type"], "application/octet-stream");
            let cache = if tile.is_partial() {
                "public, max-age=5"
            } else {
                "public, max-age=31536000, immutable"
            };
            assert_eq!(headers["cache-control"], cache, "{}", tile.path());
            fetched.insert(tile, bytes);
        }
        // Entry bundles hold the leaves, byte for byte, and hash to the level-0 tiles.
        for (tile, bytes) in &fetched {
            if tile.kind != TileKind::Entries {
                continue;
            }
            let entries = parse_entry_bundle(bytes)?;
            assert_eq!(entries.len(), usize::from(tile.width));
            let hashes = &fetched[&Tile {
                kind: TileKind::Hashes { level: 0 },
                ..*tile
            }];
            for (i, entry) in entries.iter().enumerate() {
                let index = tile.index * 256 + i as u64;
                assert_eq!(
                    *entry,
                    s.store().log_entry(index).await?.envelope.as_slice()
                );
                assert_eq!(&hashes[i * 32..i * 32 + 32], leaf_hash(entry).as_slice());
            }
        }

        // The independent client: authenticate the tiles against the checkpoint, then prove.
        let reader = independent::Reader::fetch(&s, ENTRIES).await?;
        assert_eq!(reader.tree_hash(ENTRIES, checkpoint.root)?, checkpoint.root);
        for index in [0, 1, 255, 256, 511, 512, 599] {
            let entry = s.store().log_entry(index).await?.envelope;
            reader.check_inclusion(ENTRIES, checkpoint.root, index, &entry)?;
            // Proctor's own proof API agrees with the tiles' proof.
            let (status, proof) = s
                .call(
                    "GET",
                    &format!("/v1/log/proof/inclusion?index={index}&size={ENTRIES}"),
                    None,
                    Body::None,
                )
                .await?;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                proof["hashes"].as_array().map(Vec::len),
                Some(reader.inclusion_proof_len(ENTRIES, checkpoint.root, index)?)
            );
        }
        for old in [1, 255, 256, 300, 512, 599, 600] {
            let old_root = s.store().root_at(old).await?;
            reader.check_consistency(ENTRIES, checkpoint.root, old, old_root)?;
        }
        // A root the checkpoint does not sign is refused by the client.
        let mut forged = checkpoint.root;
        forged[0] ^= 1;
        assert!(reader.tree_hash(ENTRIES, forged).is_err());
        s.stop().await;
        db.cleanup().await?;
    }
    Ok(())
}

#[tokio::test]
async fn tiles_beyond_the_log_or_misnamed_are_404_and_full_ones_are_cached() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let (job, _) = queued_job(&s).await?;
    grow(s.store(), &job, 300).await?;
    for path in [
        "tile/0/001",      // the second full tile: only 44 of its leaves exist
        "tile/0/001.p/45", // one leaf too wide
        "tile/1/000",      // a full level-1 tile needs 65,536 leaves
        "tile/1/000.p/2",  // two level-1 hashes need 512 leaves
        "tile/8/000.p/1",  // no tree has nodes there
        "tile/entries/001.p/45",
        "tile/0/0",         // not three digits
        "tile/0/x000/000",  // a second name for tile 0
        "tile/0/000.p/256", // a full tile has no .p
        "tile/64/000",      // no such level
        "tile/entries",
        "tile/junk/000",
    ] {
        let (status, body) = s
            .call("GET", &format!("/log/{path}"), None, Body::None)
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(
            body["error"]["code"] == "no_tile" || body["error"]["code"] == "no_route",
            "{path}: {body}"
        );
    }
    // What exists is served, the same bytes each time (the second from the cache).
    let (_, _, first) = get(&s, "/log/tile/0/000").await?;
    let (_, _, second) = get(&s, "/log/tile/0/000").await?;
    assert_eq!(first.len(), 256 * 32);
    assert_eq!(first, second);
    let (status, _, partial) = get(&s, "/log/tile/0/001.p/44").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(partial.len(), 44 * 32);
    // A partial tile is a prefix of the full one to come.
    let (_, _, shorter) = get(&s, "/log/tile/0/001.p/3").await?;
    assert_eq!(shorter, partial[..3 * 32]);
    s.stop().await;
    db.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn a_receipt_from_the_server_verifies_offline_against_a_policy() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let (job, id) = queued_job(&s).await?;
    grow(s.store(), &job, 20).await?;
    let (vkey, _, _) = checkpoint(&s).await?;
    let (status, _, receipt) = get(
        &s,
        &format!("/v1/attestations/{id}/tlog-proof?kind=accepted"),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _, envelope) =
        get(&s, &format!("/v1/attestations/{id}/envelope?kind=accepted")).await?;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;

    // The server is gone: the receipt, the envelope and the policy are all it takes.
    let policy = Policy::parse(format!("log {vkey}\nquorum none\n").as_bytes())?;
    let proof = TlogProof::parse(&receipt)?;
    assert_eq!(proof.index, 0);
    let ok = proof.verify(&envelope, &policy)?;
    assert_eq!(ok.checkpoint.size, 20);
    for i in 0..receipt.len() {
        let mut bad = receipt.clone();
        bad[i] ^= 0x01;
        let verdict = TlogProof::parse(&bad).and_then(|p| p.verify(&envelope, &policy));
        assert!(
            verdict.is_err(),
            "byte {i} of the receipt changed and it still verifies"
        );
    }
    db.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn the_vkey_route_and_openapi_name_the_tile_routes() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 0).await?;
    let (status, _, vkey) = get(&s, "/v1/log/vkey").await?;
    assert_eq!(status, StatusCode::OK);
    let text = std::str::from_utf8(&vkey)?;
    assert!(text.ends_with('\n'));
    let vkey = Vkey::parse(text.trim_end())?;
    assert_eq!(vkey.name(), "proctor.local/log");
    let (_, _, pem) = get(&s, "/v1/public-key").await?;
    assert_eq!(
        *vkey.key(),
        proctor_attest::VerifyingKey::from_pem(std::str::from_utf8(&pem)?)?
    );
    let (_, doc) = s.call("GET", "/openapi.json", None, Body::None).await?;
    for path in [
        "/log/checkpoint",
        "/log/tile/{path}",
        "/v1/log/vkey",
        "/v1/attestations/{id}/tlog-proof",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
    s.stop().await;
    db.cleanup().await?;
    Ok(())
}

/// The `tlog_tiles` crate (0.2.0, the newest on crates.io) as a client: tiles fetched over
/// HTTP, then read through its `TileHashReader`, which authenticates every tile against the
/// tree hash before any hash in it is used.
///
/// Its `Tile::path` is the Go checksum database's layout, with the tile height as a path
/// element (`tile/8/0/000`), not tlog-tiles' (`tile/0/000`, height fixed at 8): that is the
/// crate's, not a Proctor deviation, and the client maps the one to the other
/// ([`tlog_tiles_path`], pinned by `tlog_tiles_0_2_0_writes_go_sumdb_paths`).
mod independent {
    use tlog_tiles::{Error, Hash, HashReader as _, Tile, TileHashReader, TileReader};

    use super::*;

    /// Tiles held in memory, as `tlog_tiles` asks for them.
    struct Fetched(HashMap<Tile, Vec<u8>>);

    impl TileReader for Fetched {
        fn height(&self) -> u8 {
            8
        }

        fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, Error> {
            tiles
                .iter()
                .map(|t| {
                    self.0.get(t).cloned().ok_or_else(|| {
                        Error::InvalidInput(format!("tile {} not fetched", t.path()))
                    })
                })
                .collect()
        }

        fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
    }

    pub struct Reader {
        tiles: Fetched,
    }

    fn err(e: Error) -> anyhow::Error {
        anyhow::anyhow!("tlog_tiles: {e}")
    }

    impl Reader {
        /// Fetches every tile `tlog_tiles` says a tree of `size` has.
        pub async fn fetch(s: &TestServer, size: u64) -> anyhow::Result<Reader> {
            let mut map = HashMap::new();
            for tile in Tile::new_tiles(8, 0, size) {
                let path = tlog_tiles_path(&tile);
                let (status, _, bytes) = get(s, &format!("/log/{path}")).await?;
                anyhow::ensure!(status == StatusCode::OK, "{path} {status}");
                map.insert(tile, bytes);
            }
            Ok(Reader {
                tiles: Fetched(map),
            })
        }

        fn hashes(&self, size: u64, root: [u8; 32]) -> TileHashReader<'_> {
            TileHashReader::new(size, Hash(root), &self.tiles)
        }

        pub fn tree_hash(&self, size: u64, root: [u8; 32]) -> anyhow::Result<[u8; 32]> {
            Ok(tlog_tiles::tree_hash(size, &self.hashes(size, root))
                .map_err(err)?
                .0)
        }

        pub fn inclusion_proof_len(
            &self,
            size: u64,
            root: [u8; 32],
            index: u64,
        ) -> anyhow::Result<usize> {
            Ok(
                tlog_tiles::prove_record(size, index, &self.hashes(size, root))
                    .map_err(err)?
                    .len(),
            )
        }

        pub fn check_inclusion(
            &self,
            size: u64,
            root: [u8; 32],
            index: u64,
            entry: &[u8],
        ) -> anyhow::Result<()> {
            let hashes = self.hashes(size, root);
            let proof = tlog_tiles::prove_record(size, index, &hashes).map_err(err)?;
            // The leaf hash as the tiles hold it, and as the client computes it.
            let stored = hashes
                .read_hashes(&[tlog_tiles::stored_hash_index(0, index)])
                .map_err(err)?;
            anyhow::ensure!(stored[0] == tlog_tiles::record_hash(entry));
            tlog_tiles::check_record(
                &proof,
                size,
                Hash(root),
                index,
                tlog_tiles::record_hash(entry),
            )
            .map_err(|e| anyhow::anyhow!("entry {index}: {e}"))
        }

        pub fn check_consistency(
            &self,
            size: u64,
            root: [u8; 32],
            old: u64,
            old_root: [u8; 32],
        ) -> anyhow::Result<()> {
            let proof = tlog_tiles::prove_tree(size, old, &self.hashes(size, root)).map_err(err)?;
            tlog_tiles::check_tree(&proof, size, Hash(root), old, Hash(old_root))
                .map_err(|e| anyhow::anyhow!("{old} -> {size}: {e}"))
        }
    }

    /// The tlog-tiles path of a `tlog_tiles` tile of height 8: its own path without the
    /// height element.
    pub fn tlog_tiles_path(tile: &Tile) -> String {
        tile.path().replacen("tile/8/", "tile/", 1)
    }

    #[test]
    fn tlog_tiles_0_2_0_writes_go_sumdb_paths() {
        // The test vector: tile 1234067 of level 0, 8 hashes wide. c2sp.org/tlog-tiles names it
        // `tile/0/x001/x234/067.p/8`; the crate writes the height in.
        let tile = Tile::new(8, 0, 1_234_067, 8, false);
        assert_eq!(tile.path(), "tile/8/0/x001/x234/067.p/8");
        let ours = proctor_attest::tiles::Tile {
            kind: TileKind::Hashes { level: 0 },
            index: 1_234_067,
            width: 8,
        };
        assert_eq!(tlog_tiles_path(&tile), ours.path());
    }
}
