//! Trust policies for offline verification: C2SP tlog-policy (<https://c2sp.org/tlog-policy>).
//!
//! ```text
//! log proctor.example.org/log+1b3e6a5c+AU3R...        (the log's vkey, type 0x01)
//! witness uni  uni.example/witness+a1b2c3d4+BJk...     (witnesses' vkeys, type 0x04)
//! witness reg  regulator.example/w+0f0e0d0c+BHm...
//! witness aics aics.example/w+99887766+BOp...
//! group two-of-three 2 uni reg aics
//! quorum two-of-three
//! ```
//!
//! A checkpoint satisfies the policy when one of its logs signed it (key name = origin) and its
//! cosignatures meet the quorum: a witness counts when its `cosignature/v1` line verifies, a
//! group when at least `k` of its members count (`any` = 1, `all` = every member), `quorum
//! none` asks for no cosignature. As signed notes require, lines by keys the policy does not
//! name are ignored, and a line by a named key that does not verify rejects the checkpoint.
//!
//! Parsing follows the spec: lines of space- or tab-separated items, `#` comments and blank
//! lines ignored, names defined before use, one quorum line, each name a group member at most
//! once, no two logs (or two witnesses) with the same public key. Two choices of Proctor's,
//! within the spec's leeway: the file must be UTF-8 (the spec allows opaque high-bit octets
//! in names; vkeys, which must be UTF-8 anyway, are what matter), and at most
//! [`MAX_ENTRIES`] logs, witnesses and groups each (the spec asks implementations for 32).

use std::collections::{HashMap, HashSet};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cosignature::{self, CosignatureError};
use crate::note::NoteError;
use crate::vkey::{SignatureType, Vkey};

/// Most logs, witnesses or groups a policy may define.
pub const MAX_ENTRIES: usize = 256;

/// Why a policy file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}: {message}")]
pub struct PolicyError {
    /// The 1-based line number (0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Why a checkpoint does not satisfy a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFailure {
    /// The checkpoint cannot be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// No log of the policy has the checkpoint's origin as its key name.
    #[error("the policy names no log with origin {0:?}")]
    UnknownLog(String),
    /// The log's signature is missing or does not verify.
    #[error("the log's signature: {0}")]
    LogSignature(NoteError),
    /// A witness's line does not verify (the whole checkpoint is refused, as signed notes ask).
    #[error("witness {witness}: {error}")]
    BadCosignature {
        /// The witness's name in the policy.
        witness: String,
        /// What failed.
        error: CosignatureError,
    },
    /// Too few witnesses cosigned.
    #[error(
        "the quorum is not met: cosigned by {} of the policy's witnesses ({}); the quorum `{quorum}` needs more",
        .cosigned.len(),
        names(.cosigned)
    )]
    NoQuorum {
        /// The witnesses whose cosignatures verified.
        cosigned: Vec<String>,
        /// The quorum's name.
        quorum: String,
    },
}

/// `a, b` or `none`.
fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

/// A log the policy trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// Its vkey (type 0x01; the name is the log's origin).
    pub vkey: Vkey,
    /// Where it is served, if given.
    pub url: Option<String>,
}

/// A witness the policy names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    /// Its name in the policy.
    pub name: String,
    /// Its vkey (type 0x04).
    pub vkey: Vkey,
    /// Its tlog-witness submission prefix, if given.
    pub url: Option<String>,
}

/// A name a group or the quorum refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// A parsed tlog-policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    /// `None`: `quorum none`.
    quorum: Option<Member>,
}

/// A checkpoint that satisfies a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Satisfied {
    /// What it states.
    pub checkpoint: Checkpoint,
    /// The policy's witnesses whose cosignatures verified, with each one's timestamp.
    pub cosigned: Vec<(String, u64)>,
}

impl Policy {
    /// Reads a policy file.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] naming the line and what is wrong with it.
    pub fn parse(text: &[u8]) -> Result<Policy, PolicyError> {
        let text = std::str::from_utf8(text).map_err(|_| PolicyError {
            line: 0,
            message: "the file is not UTF-8".into(),
        })?;
        let mut builder = Builder::default();
        for (number, line) in (1..).zip(text.split('\n')) {
            builder.line(line).map_err(|message| PolicyError {
                line: number,
                message,
            })?;
        }
        builder.finish()
    }

    /// The logs it trusts.
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The witnesses it names.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The quorum line's name (`none` for no cosignatures).
    pub fn quorum_name(&self) -> &str {
        match self.quorum {
            None => "none",
            Some(member) => self.member_name(member),
        }
    }

    fn member_name(&self, member: Member) -> &str {
        match member {
            Member::Witness(i) => &self.witnesses[i].name,
            Member::Group(i) => &self.groups[i].name,
        }
    }

    /// Whether the witnesses at these indexes (into [`Policy::witnesses`]) meet the quorum.
    pub fn quorum_met(&self, cosigned: &HashSet<usize>) -> bool {
        self.quorum.is_none_or(|q| self.witnessed(q, cosigned))
    }

    fn witnessed(&self, member: Member, cosigned: &HashSet<usize>) -> bool {
        match member {
            Member::Witness(i) => cosigned.contains(&i),
            Member::Group(i) => {
                let group = &self.groups[i];
                // Groups only refer to earlier names, so this recursion ends.
                let count = group
                    .members
                    .iter()
                    .filter(|&&m| self.witnessed(m, cosigned))
                    .count();
                count >= group.threshold
            }
        }
    }

    /// The log's vkey for `origin`, if the policy trusts one.
    pub fn log_for(&self, origin: &str) -> Option<&PolicyLog> {
        self.logs.iter().find(|l| l.vkey.name() == origin)
    }

    /// Checks a signed checkpoint (with its cosignature lines) against the policy.
    ///
    /// # Errors
    ///
    /// [`PolicyFailure`]: unreadable, an unknown log, a bad log signature, a bad
    /// cosignature, or too few cosignatures.
    pub fn verify_checkpoint(&self, note: &[u8]) -> Result<Satisfied, PolicyFailure> {
        let (checkpoint, signed) = Checkpoint::parse_unverified(note)?;
        let log = self
            .log_for(&checkpoint.origin)
            .ok_or_else(|| PolicyFailure::UnknownLog(checkpoint.origin.clone()))?;
        signed
            .verify(log.vkey.name(), log.vkey.key())
            .map_err(PolicyFailure::LogSignature)?;
        let mut cosigned = Vec::new();
        let mut indexes = HashSet::new();
        for (i, witness) in self.witnesses.iter().enumerate() {
            match cosignature::verify_note(&signed, &witness.vkey) {
                Ok(timestamp) => {
                    cosigned.push((witness.name.clone(), timestamp));
                    indexes.insert(i);
                }
                Err(CosignatureError::Missing { .. }) => {}
                Err(error) => {
                    return Err(PolicyFailure::BadCosignature {
                        witness: witness.name.clone(),
                        error,
                    });
                }
            }
        }
        if !self.quorum_met(&indexes) {
            return Err(PolicyFailure::NoQuorum {
                cosigned: cosigned.into_iter().map(|(name, _)| name).collect(),
                quorum: self.quorum_name().to_owned(),
            });
        }
        Ok(Satisfied {
            checkpoint,
            cosigned,
        })
    }
}

#[derive(Default)]
struct Builder {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    names: HashMap<String, Member>,
    /// Names already listed as some group's member.
    in_a_group: HashSet<String>,
    quorum: Option<Option<Member>>,
}

impl Builder {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if let Some(c) = line.chars().find(|&c| c < ' ' && c != '\t') {
            return Err(if c == '\r' {
                "a carriage return (the file must have LF line ends)".into()
            } else {
                format!("control character {:?}", c)
            });
        }
        if line.contains('\u{7f}') {
            return Err("control character DEL".into());
        }
        let trimmed = line.trim_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(());
        }
        let items: Vec<&str> = trimmed
            .split([' ', '\t'])
            .filter(|s| !s.is_empty())
            .collect();
        match items.as_slice() {
            ["log", vkey, rest @ ..] => self.log(vkey, url(rest)?),
            ["witness", name, vkey, rest @ ..] => self.witness(name, vkey, url(rest)?),
            ["group", name, threshold, members @ ..] => self.group(name, threshold, members),
            ["quorum", name] => self.set_quorum(name),
            [keyword, ..] if ["log", "witness", "group", "quorum"].contains(keyword) => {
                Err(format!("a `{keyword}` line with too few or too many items"))
            }
            [keyword, ..] => Err(format!("unknown keyword {keyword:?}")),
            [] => Ok(()),
        }
    }

    fn log(&mut self, vkey: &str, url: Option<String>) -> Result<(), String> {
        let vkey = typed_vkey(vkey, SignatureType::Ed25519, "a log")?;
        if self.logs.iter().any(|l| l.vkey.key() == vkey.key()) {
            return Err("a second log with the same public key".into());
        }
        limit(self.logs.len(), "logs")?;
        self.logs.push(PolicyLog { vkey, url });
        Ok(())
    }

    fn witness(&mut self, name: &str, vkey: &str, url: Option<String>) -> Result<(), String> {
        self.new_name(name)?;
        let vkey = typed_vkey(vkey, SignatureType::CosignatureV1, "a witness")?;
        if self.witnesses.iter().any(|w| w.vkey.key() == vkey.key()) {
            return Err("a second witness with the same public key".into());
        }
        limit(self.witnesses.len(), "witnesses")?;
        self.names
            .insert(name.to_owned(), Member::Witness(self.witnesses.len()));
        self.witnesses.push(PolicyWitness {
            name: name.to_owned(),
            vkey,
            url,
        });
        Ok(())
    }

    fn group(&mut self, name: &str, threshold: &str, members: &[&str]) -> Result<(), String> {
        self.new_name(name)?;
        if members.is_empty() {
            return Err(format!("group {name:?} has no members"));
        }
        let mut resolved = Vec::with_capacity(members.len());
        for &member in members {
            if member == "none" {
                return Err("`none` cannot be a group member".into());
            }
            let found = *self
                .names
                .get(member)
                .ok_or_else(|| format!("{member:?} is not defined on an earlier line"))?;
            if !self.in_a_group.insert(member.to_owned()) {
                return Err(format!("{member:?} is a group member already"));
            }
            resolved.push(found);
        }
        let n = resolved.len();
        let threshold = match threshold {
            "all" => n,
            "any" => 1,
            k => decimal(k)
                .filter(|k| (1..=n).contains(k))
                .ok_or_else(|| format!("threshold {k:?} is not all, any or 1 to {n}"))?,
        };
        limit(self.groups.len(), "groups")?;
        self.names
            .insert(name.to_owned(), Member::Group(self.groups.len()));
        self.groups.push(Group {
            name: name.to_owned(),
            threshold,
            members: resolved,
        });
        Ok(())
    }

    fn set_quorum(&mut self, name: &str) -> Result<(), String> {
        if self.quorum.is_some() {
            return Err("a second quorum line".into());
        }
        let member = match name {
            "none" => None,
            _ => Some(
                *self
                    .names
                    .get(name)
                    .ok_or_else(|| format!("{name:?} is not defined on an earlier line"))?,
            ),
        };
        self.quorum = Some(member);
        Ok(())
    }

    fn new_name(&self, name: &str) -> Result<(), String> {
        if name == "none" {
            return Err("`none` is predefined".into());
        }
        if self.names.contains_key(name) {
            return Err(format!("{name:?} is defined already"));
        }
        Ok(())
    }

    fn finish(self) -> Result<Policy, PolicyError> {
        let quorum = self.quorum.ok_or(PolicyError {
            line: 0,
            message: "no quorum line (write `quorum none` to ask for no cosignatures)".into(),
        })?;
        Ok(Policy {
            logs: self.logs,
            witnesses: self.witnesses,
            groups: self.groups,
            quorum,
        })
    }
}

fn url(rest: &[&str]) -> Result<Option<String>, String> {
    match rest {
        [] => Ok(None),
        [url] => Ok(Some((*url).to_owned())),
        _ => Err("too many items".into()),
    }
}

fn typed_vkey(text: &str, wanted: SignatureType, what: &str) -> Result<Vkey, String> {
    let vkey = Vkey::parse(text).map_err(|e| e.to_string())?;
    if vkey.signature_type() != wanted {
        return Err(format!(
            "{what}'s vkey must be of signature type 0x{:02x}, this one is 0x{:02x}",
            wanted.byte(),
            vkey.signature_type().byte()
        ));
    }
    Ok(vkey)
}

fn limit(count: usize, what: &str) -> Result<(), String> {
    if count >= MAX_ENTRIES {
        return Err(format!("more than {MAX_ENTRIES} {what}"));
    }
    Ok(())
}

fn decimal(text: &str) -> Option<usize> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// A policy text for one log and its witnesses at a `k`-of-n quorum (`k = 0`: `quorum none`),
/// for an operator to hand out (regulators may well write their own).
pub fn simple_policy(log: &Vkey, witnesses: &[(String, Vkey)], k: usize) -> String {
    let mut text = format!("log {log}\n");
    for (name, vkey) in witnesses {
        text.push_str(&format!("witness {name} {vkey}\n"));
    }
    if k == 0 || witnesses.is_empty() {
        text.push_str("quorum none\n");
    } else {
        let names: Vec<&str> = witnesses.iter().map(|(n, _)| n.as_str()).collect();
        text.push_str(&format!(
            "group witnesses {k} {}\nquorum witnesses\n",
            names.join(" ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::log::TreeHead;
    use crate::note::SignedNote;

    struct Fixture {
        log: SigningKey,
        witnesses: Vec<(String, SigningKey)>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                log: SigningKey::from_seed(&[1; 32]),
                witnesses: (0..3u8)
                    .map(|i| {
                        (
                            format!("w{i}.example"),
                            SigningKey::from_seed(&[10 + i; 32]),
                        )
                    })
                    .collect(),
            }
        }

        fn log_vkey(&self) -> Vkey {
            Vkey::new(
                "log.example/log",
                SignatureType::Ed25519,
                self.log.verifying_key(),
            )
            .unwrap()
        }

        fn witness_vkeys(&self) -> Vec<(String, Vkey)> {
            self.witnesses
                .iter()
                .enumerate()
                .map(|(i, (name, key))| {
                    (
                        format!("w{i}"),
                        cosignature::vkey(name, &key.verifying_key()).unwrap(),
                    )
                })
                .collect()
        }

        /// A checkpoint cosigned by the witnesses at `by`.
        fn checkpoint(&self, by: &[usize]) -> String {
            let head = TreeHead {
                size: 5,
                root: [7; 32],
            };
            let signed = Checkpoint::new("log.example/log", head)
                .sign(&self.log)
                .unwrap();
            let mut note = SignedNote::parse(&signed).unwrap();
            for &i in by {
                let (name, key) = &self.witnesses[i];
                let cosig =
                    cosignature::sign(&note.text, name, key, 1_700_000_000 + i as u64).unwrap();
                note.signatures.push(cosig.to_note_signature());
            }
            note.encode()
        }
    }

    #[test]
    fn a_two_of_three_policy_counts_cosignatures() {
        let f = Fixture::new();
        let policy =
            Policy::parse(simple_policy(&f.log_vkey(), &f.witness_vkeys(), 2).as_bytes()).unwrap();
        assert_eq!(policy.witnesses().len(), 3);
        let ok = policy
            .verify_checkpoint(f.checkpoint(&[0, 2]).as_bytes())
            .unwrap();
        assert_eq!(ok.checkpoint.size, 5);
        assert_eq!(
            ok.cosigned,
            vec![
                ("w0".to_owned(), 1_700_000_000),
                ("w2".to_owned(), 1_700_000_002)
            ]
        );
        assert!(matches!(
            policy.verify_checkpoint(f.checkpoint(&[1]).as_bytes()),
            Err(PolicyFailure::NoQuorum { cosigned, .. }) if cosigned == ["w1"]
        ));
        // A tampered cosignature rejects the checkpoint even with the quorum met otherwise.
        let good = f.checkpoint(&[0, 1, 2]);
        let last = good.trim_end().rsplit(' ').next().unwrap();
        let mut blob = crate::b64::decode(last).unwrap();
        blob[20] ^= 1;
        let bad = good.replace(last, &crate::b64::encode(&blob));
        assert!(matches!(
            policy.verify_checkpoint(bad.as_bytes()),
            Err(PolicyFailure::BadCosignature { witness, .. }) if witness == "w2"
        ));
        // Another log's checkpoint, or the log's signature gone.
        let other = Policy::parse(
            simple_policy(
                &Vkey::new(
                    "log.example/log",
                    SignatureType::Ed25519,
                    f.witnesses[0].1.verifying_key(),
                )
                .unwrap(),
                &[],
                0,
            )
            .as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            other.verify_checkpoint(good.as_bytes()),
            Err(PolicyFailure::LogSignature(_))
        ));
    }

    #[test]
    fn the_specs_nested_groups_are_evaluated() {
        let keys: Vec<Vkey> = (0..6u8)
            .map(|i| {
                cosignature::vkey(
                    &format!("w{i}"),
                    &SigningKey::from_seed(&[40 + i; 32]).verifying_key(),
                )
                .unwrap()
            })
            .collect();
        let log = Vkey::new(
            "l",
            SignatureType::Ed25519,
            SigningKey::from_seed(&[1; 32]).verifying_key(),
        )
        .unwrap();
        let text = format!(
            "# the example of c2sp.org/tlog-policy\nlog {log}\n\n\
             witness X1 {}\nwitness X2 {}\n\twitness X3 {}   \ngroup X-witnesses 2 X1 X2 X3\n\
             witness Y1 {}\nwitness Y2 {} https://y2.example/\nwitness Y3 {}\n\
             group Y-witnesses any Y1 Y2 Y3\n\
             group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n",
            keys[0], keys[1], keys[2], keys[3], keys[4], keys[5]
        );
        let policy = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(
            policy.witnesses()[4].url.as_deref(),
            Some("https://y2.example/")
        );
        let met = |set: &[usize]| policy.quorum_met(&set.iter().copied().collect());
        assert!(met(&[0, 1, 3]));
        assert!(met(&[0, 2, 5]));
        assert!(!met(&[0, 3, 4, 5]));
        assert!(!met(&[0, 1, 2]));
        assert!(!met(&[]));
    }

    #[test]
    fn malformed_policies_are_refused_with_their_line() {
        let f = Fixture::new();
        let log = f.log_vkey();
        let vkeys = f.witness_vkeys();
        let (w0, w1) = (&vkeys[0].1, &vkeys[1].1);
        let cases = [
            (format!("log {log}\n"), 0),
            (format!("log {log}\nquorum none\nquorum none\n"), 3),
            (format!("log {log}\nquorum w0\n"), 2),
            (format!("witness a {w0}\nwitness a {w1}\nquorum a\n"), 2),
            (format!("witness a {w0}\nwitness b {w0}\nquorum a\n"), 2),
            (format!("witness none {w0}\nquorum none\n"), 1),
            (format!("witness a {log}\nquorum a\n"), 1),
            (format!("log {w0}\nquorum none\n"), 1),
            (format!("log {log}\nlog {log}\nquorum none\n"), 2),
            (format!("witness a {w0}\ngroup g 2 a\nquorum g\n"), 2),
            (format!("witness a {w0}\ngroup g 0 a\nquorum g\n"), 2),
            (format!("witness a {w0}\ngroup g 01 a\nquorum g\n"), 2),
            (format!("witness a {w0}\ngroup g any\nquorum g\n"), 2),
            (format!("witness a {w0}\ngroup g any a a\nquorum g\n"), 2),
            (
                format!("witness a {w0}\ngroup g any a\ngroup h any a\nquorum h\n"),
                3,
            ),
            (format!("witness a {w0}\ngroup g any b\nquorum g\n"), 2),
            (format!("witness a {w0}\ngroup g any none\nquorum g\n"), 2),
            (format!("log {log}\r\nquorum none\n"), 1),
            (format!("logs {log}\nquorum none\n"), 1),
            (format!("log {log} url extra\nquorum none\n"), 1),
            ("quorum\n".to_owned(), 1),
        ];
        for (text, line) in cases {
            let err = Policy::parse(text.as_bytes()).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
        }
        assert!(Policy::parse(b"\xff\nquorum none\n").is_err());
        let none = Policy::parse(b"  # nothing but a quorum\nquorum none").unwrap();
        assert!(none.quorum_met(&HashSet::new()));
        assert!(none.logs().is_empty());
    }
}
