//! Shards: one batch split over N processes that share an output folder without coordinating.
//!
//! A call belongs to shard `k` of `n` when a SHA-256 of its call_id, read as a number, is `k`
//! modulo `n`: stable across runs, machines and input order. The shard comes from `--shard K/N`
//! (K from 0) or, without it, from the environment exactly as the schedulers set it:
//! - Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` (from 0); N from `--shards` or
//!   `CALLQA_SHARDS` (set it to the Job's `completions`);
//! - Slurm job arrays: `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`,
//!   `SLURM_ARRAY_TASK_MIN` and `SLURM_ARRAY_TASK_STEP` (`--array=1-8` and `--array=0-14:2`
//!   both work).
//!
//! Everything a shard writes carries its tag (`s<k>of<n>`): run ids, and so every table file
//! name, its lock and its failures file. That is what keeps one shard's recovery away from
//! another's files (README, Shards).

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShardError {
    #[error("shard {0:?} is not K/N with 0 <= K < N")]
    Spec(String),
    #[error("{name}={value:?} is not a whole number")]
    NotANumber { name: &'static str, value: String },
    #[error("JOB_COMPLETION_INDEX is set but the number of shards is not: pass --shards N or set CALLQA_SHARDS (the Job's completions)")]
    NoCount,
    #[error("the environment names shard {index} of {count}, which does not exist")]
    OutOfRange { index: u32, count: u32 },
}

impl Shard {
    fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// `K/N`, K counted from 0.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let spec = || ShardError::Spec(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(spec)?;
        let (k, n): (u32, u32) = (k.trim().parse().map_err(|_| spec())?, n.trim().parse().map_err(|_| spec())?);
        Shard::new(k, n).map_err(|_| spec())
    }

    /// The shard the scheduler gave this process, if any. `shards` is `--shards`; `var` reads
    /// the environment (a parameter, so tests need not touch the process's).
    pub fn from_env(shards: Option<u32>, var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
        let number = |name: &'static str| -> Result<Option<u32>, ShardError> {
            match var(name).filter(|v| !v.trim().is_empty()) {
                Some(value) => value.trim().parse().map(Some).map_err(|_| ShardError::NotANumber { name, value }),
                None => Ok(None),
            }
        };
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = match shards {
                Some(n) => n,
                None => number("CALLQA_SHARDS")?.ok_or(ShardError::NoCount)?,
            };
            return Shard::new(index, count).map(Some);
        }
        if let (Some(id), Some(count)) = (number("SLURM_ARRAY_TASK_ID")?, number("SLURM_ARRAY_TASK_COUNT")?) {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let index = id.checked_sub(min).ok_or(ShardError::OutOfRange { index: id, count })? / step;
            return Shard::new(index, count).map(Some);
        }
        Ok(None)
    }

    pub fn owns(&self, call_id: &str) -> bool {
        let digest = Sha256::digest(call_id.as_bytes());
        let number = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        number % self.count as u64 == self.index as u64
    }

    /// `s<k>of<n>`: in run ids, file names and lock names.
    pub fn tag(&self) -> String {
        format!("s{}of{}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_schedulers_variables_name_the_shard() {
        assert_eq!(Shard::from_env(None, env(&[])), Ok(None));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2"), ("CALLQA_SHARDS", "3")]);
        assert_eq!(Shard::from_env(None, &k8s), Ok(Some(Shard { index: 2, count: 3 })));
        assert_eq!(Shard::from_env(Some(5), &k8s), Ok(Some(Shard { index: 2, count: 5 })), "--shards wins");
        assert_eq!(Shard::from_env(None, env(&[("JOB_COMPLETION_INDEX", "0")])), Err(ShardError::NoCount));
        let slurm =
            env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "3"), ("SLURM_ARRAY_TASK_MIN", "1")]);
        assert_eq!(Shard::from_env(None, slurm), Ok(Some(Shard { index: 2, count: 3 })));
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "14"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert_eq!(Shard::from_env(None, stepped), Ok(Some(Shard { index: 7, count: 8 })));
        let wrong = env(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "3")]);
        assert!(matches!(Shard::from_env(None, wrong), Err(ShardError::NotANumber { .. })));
        let beyond = env(&[("JOB_COMPLETION_INDEX", "3"), ("CALLQA_SHARDS", "3")]);
        assert_eq!(Shard::from_env(None, beyond), Err(ShardError::OutOfRange { index: 3, count: 3 }));
    }

    #[test]
    fn every_call_is_in_exactly_one_shard_and_shards_are_even() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/3", "1/0", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (0..3).map(|k| Shard { index: k, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for i in 0..3000 {
            let id = format!("call-{i}");
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0].index as usize] += 1;
        }
        assert!(sizes.iter().all(|&n| (900..=1100).contains(&n)), "{sizes:?}");
        assert_eq!(shards[1].tag(), "s1of3");
    }
}
