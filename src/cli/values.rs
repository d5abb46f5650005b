//! The value parsers of the command line: durations, times, counts with their ranges,
//! claim tokens and ids. Each error is in the words of the flag (`--lease must be at least
//! 1ms`, `invalid value '-1' for --delay: durations are not negative`), shows at most the
//! start of what was given (see [`crate::excerpt`]), and is one line; `app` adds where to
//! find help.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Command, Error};

use crate::excerpt::excerpt;
use crate::store::local::layout;
use crate::timefmt::{parse_duration, parse_time};

/// How an argument is named in errors: `--lease`, `-n/--count`, or a positional's value
/// name (`TOKEN`).
fn flag(arg: Option<&Arg>) -> String {
    let Some(arg) = arg else {
        return "the value".to_string();
    };
    match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("-{s}/--{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => arg
            .get_value_names()
            .and_then(|names| names.first())
            .map_or_else(|| arg.get_id().to_string(), ToString::to_string),
    }
}

/// An error that is exactly `message`.
fn error(message: String) -> Error {
    Error::raw(ErrorKind::ValueValidation, message)
}

/// The error for a value that does not parse: what was given (its start) and why.
fn invalid(arg: Option<&Arg>, value: &str, why: &str) -> Error {
    error(format!(
        "invalid value '{}' for {}: {why}",
        excerpt(value),
        flag(arg)
    ))
}

/// The value as text, or the error for a value that is not UTF-8.
fn text<'a>(arg: Option<&Arg>, value: &'a OsStr) -> Result<&'a str, Error> {
    value
        .to_str()
        .ok_or_else(|| invalid(arg, &value.to_string_lossy(), "not UTF-8"))
}

/// A duration (see [`parse_duration`]) of at least `min`.
#[derive(Clone, Copy)]
pub struct Dur {
    min: Duration,
}

impl Dur {
    /// Any duration, zero included.
    pub const fn any() -> Dur {
        Dur {
            min: Duration::ZERO,
        }
    }

    /// A duration of at least one millisecond: a lease.
    pub const fn positive() -> Dur {
        Dur {
            min: Duration::from_millis(1),
        }
    }
}

impl TypedValueParser for Dur {
    type Value = Duration;

    fn parse_ref(&self, _: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<Duration, Error> {
        let value = text(arg, value)?;
        let d = parse_duration(value).map_err(|why| invalid(arg, value, &why))?;
        if d < self.min {
            return Err(error(format!(
                "{} must be at least {}ms",
                flag(arg),
                self.min.as_millis()
            )));
        }
        Ok(d)
    }
}

/// A point in time (see [`parse_time`]).
#[derive(Clone, Copy)]
pub struct Time;

impl TypedValueParser for Time {
    type Value = SystemTime;

    fn parse_ref(
        &self,
        _: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<SystemTime, Error> {
        let value = text(arg, value)?;
        parse_time(value).map_err(|why| invalid(arg, value, &why))
    }
}

/// A whole number from `min` to `max`, as a `T`.
pub struct Count<T> {
    min: u64,
    max: u64,
    of: PhantomData<fn() -> T>,
}

impl<T> Clone for Count<T> {
    fn clone(&self) -> Self {
        Count { ..*self }
    }
}

impl<T> Count<T> {
    /// From `min` to `max`, both included; `max` must fit in a `T`.
    pub const fn new(min: u64, max: u64) -> Self {
        Count {
            min,
            max,
            of: PhantomData,
        }
    }
}

impl<T: TryFrom<u64> + Clone + Send + Sync + 'static> TypedValueParser for Count<T> {
    type Value = T;

    fn parse_ref(&self, _: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, Error> {
        let value = text(arg, value)?;
        // Bounded above only by the type: say so only when the value is too large.
        let unbounded = self.max == u64::MAX || T::try_from(self.max + 1).is_err();
        let flag = flag(arg);
        let below = || match unbounded {
            true => error(format!("{flag} must be at least {}", self.min)),
            false => error(format!("{flag} must be from {} to {}", self.min, self.max)),
        };
        let above = || match unbounded {
            true => error(format!("{flag} is too large (at most {})", self.max)),
            false => error(format!("{flag} must be from {} to {}", self.min, self.max)),
        };
        let digits = value.strip_prefix('-').unwrap_or(value);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(arg, value, "not a whole number"));
        }
        // Negative: below any minimum (but -0 is 0); past u64: above any maximum.
        let n = match (value.starts_with('-'), digits.parse::<u64>()) {
            (true, Ok(0)) => 0,
            (true, _) => return Err(below()),
            (false, Ok(n)) => n,
            (false, Err(_)) => return Err(above()),
        };
        if n < self.min {
            return Err(below());
        }
        if n > self.max {
            return Err(above());
        }
        T::try_from(n).map_err(|_| above())
    }
}

/// A claim token, as `spool claim` prints them (see [`layout::parse_token`]), or the error
/// that says it is not one.
fn token(arg: Option<&Arg>, value: &str) -> Result<String, Error> {
    match layout::parse_token(value) {
        Some(_) => Ok(value.to_string()),
        None => Err(invalid(
            arg,
            value,
            "not a claim token (they look like 42.9f3a0c1d2e4b5a67)",
        )),
    }
}

/// A claim token, as `spool claim` prints them (see [`layout::parse_token`]).
#[derive(Clone, Copy)]
pub struct Token;

impl TypedValueParser for Token {
    type Value = String;

    fn parse_ref(&self, _: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<String, Error> {
        token(arg, text(arg, value)?)
    }
}

/// A deduplication key (see [`store::check_key`]).
#[derive(Clone, Copy)]
pub struct Key;

impl TypedValueParser for Key {
    type Value = String;

    fn parse_ref(&self, _: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<String, Error> {
        let value = text(arg, value)?;
        match crate::store::is_valid_key(value) {
            true => Ok(value.to_string()),
            false => Err(invalid(arg, value, crate::store::KEY_RULE)),
        }
    }
}

/// A claim token, or a message id: decimal digits, no leading zero.
#[derive(Clone, Copy)]
pub struct TokenOrId;

impl TypedValueParser for TokenOrId {
    type Value = String;

    fn parse_ref(&self, _: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<String, Error> {
        let value = text(arg, value)?;
        if value.contains('.') {
            return token(arg, value);
        }
        let id = !value.starts_with('0')
            && value.bytes().all(|b| b.is_ascii_digit())
            && value.parse::<u64>().is_ok();
        match id {
            true => Ok(value.to_string()),
            false => Err(invalid(
                arg,
                value,
                "not a message id or a claim token (they look like 42 and 42.9f3a0c1d2e4b5a67)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `value` for an argument `--long` (with `-short` if given) and returns the
    /// error's message.
    fn message<P: TypedValueParser>(
        p: P,
        short: Option<char>,
        long: &'static str,
        value: &str,
    ) -> String {
        let mut arg = Arg::new("x").long(long);
        if let Some(s) = short {
            arg = arg.short(s);
        }
        match p.parse_ref(&Command::new("spool"), Some(&arg), value.as_ref()) {
            Ok(_) => panic!("{value:?} was accepted"),
            Err(e) => {
                let text = e.to_string();
                let line = text.trim_end().strip_prefix("error: ").map(str::to_string);
                line.unwrap_or_else(|| panic!("not one error line: {text:?}"))
            }
        }
    }

    #[test]
    fn counts_in_the_words_of_the_flag() {
        let n = Count::<u64>::new(1, u64::MAX);
        assert_eq!(
            message(n.clone(), Some('n'), "count", "0"),
            "-n/--count must be at least 1"
        );
        assert_eq!(
            message(n.clone(), Some('n'), "count", "-1"),
            "-n/--count must be at least 1"
        );
        assert_eq!(
            message(n.clone(), Some('n'), "count", "many"),
            "invalid value 'many' for -n/--count: not a whole number"
        );
        assert!(message(n, Some('n'), "count", &"9".repeat(30)).contains("too large"));
        let p = Count::<u8>::new(0, 9);
        assert_eq!(
            message(p.clone(), None, "priority", "10"),
            "--priority must be from 0 to 9"
        );
        assert_eq!(
            message(p, None, "priority", "-1"),
            "--priority must be from 0 to 9"
        );
        let a = Count::<u32>::new(1, u32::MAX.into());
        assert_eq!(
            message(a.clone(), None, "max-attempts", "0"),
            "--max-attempts must be at least 1"
        );
        assert_eq!(
            message(a, None, "max-attempts", "4294967296"),
            "--max-attempts is too large (at most 4294967295)"
        );
        let j = Count::<u32>::new(1, 1024);
        assert!(message(j, Some('j'), "jobs", &"9".repeat(30)).contains("from 1 to 1024"));
    }

    #[test]
    fn durations_in_the_words_of_the_flag() {
        assert_eq!(
            message(Dur::positive(), None, "lease", "0"),
            "--lease must be at least 1ms"
        );
        assert_eq!(
            message(Dur::any(), None, "delay", "-1"),
            format!(
                "invalid value '-1' for --delay: {}",
                parse_duration("-1").unwrap_err()
            )
        );
        let long = message(Dur::any(), None, "delay", &"5".repeat(100_000));
        assert!(long.len() < 300, "{long}");
    }

    #[test]
    fn tokens() {
        let token = |v: &str| Token.parse_ref(&Command::new("spool"), None, v.as_ref());
        assert!(token("42.9f3a0c1d2e4b5a67").is_ok());
        for bad in [
            "42.9f3a0c1d2e4b5a6",
            "42.9f3a0c1d2e4b5a670",
            "42",
            "x",
            "042.9f3a0c1d2e4b5a67",
        ] {
            let e = token(bad).unwrap_err().to_string();
            assert!(e.contains("not a claim token"), "{bad}: {e}");
        }
        let e = token(&"1.".repeat(50_000)).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
        let show = |v: &str| TokenOrId.parse_ref(&Command::new("spool"), None, v.as_ref());
        assert!(show("42").is_ok() && show("42.9f3a0c1d2e4b5a67").is_ok());
        for bad in ["0", "042", "x", "", "99999999999999999999", "42.9f3a"] {
            assert!(show(bad).is_err(), "{bad}");
        }
    }
}
