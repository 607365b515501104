//! The Prometheus text format (0.0.4) for [`MetricDef`] families, and gzip made in two parts:
//! the large cached part is compressed once, the small per-scrape part each time, and both
//! become one valid gzip member.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use crc32fast::Hasher as Crc;
use flate2::{Compress, Compression, FlushCompress, Status};

use crate::snapshot::{Kind, MetricDef};

/// `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Samples of families, grouped so that each family is written once and each label set once:
/// a label set added twice (Graph repeating a key) holds the sum. Label values are borrowed
/// from the snapshots being rendered, never copied: with a thousand tenants a render holds a
/// million samples.
#[derive(Default)]
pub struct Families<'a> {
    families: BTreeMap<&'static str, Family<'a>>,
}

struct Family<'a> {
    def: &'static MetricDef,
    series: Vec<Series<'a>>,
}

struct Series<'a> {
    tenant: &'a str,
    values: Values<'a>,
    value: f64,
}

/// The values of `def.labels`, in order.
#[derive(Clone, Copy)]
enum Values<'a> {
    /// A sample's, held by its snapshot.
    Shared(&'a [Arc<str>]),
    /// Up to two values that live as long as the process, such as report names.
    Fixed([&'static str; 2], usize),
}

impl<'a> Values<'a> {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let (shared, fixed): (&[Arc<str>], &[&'static str]) = match self {
            Values::Shared(values) => (values, &[]),
            Values::Fixed(values, len) => (&[], &values[..*len]),
        };
        shared.iter().map(|v| &**v).chain(fixed.iter().copied())
    }
}

impl<'a> Families<'a> {
    /// Adds a sample; `labels` are the values of `def.labels`.
    pub fn add(
        &mut self,
        def: &'static MetricDef,
        tenant: &'a str,
        labels: &'a [Arc<str>],
        value: f64,
    ) {
        self.push(def, tenant, Values::Shared(labels), value);
    }

    /// Adds a sample whose label values (at most two) live as long as the process.
    pub fn add_fixed(
        &mut self,
        def: &'static MetricDef,
        tenant: &'a str,
        labels: &[&'static str],
        value: f64,
    ) {
        debug_assert!(labels.len() <= 2, "{}", def.name);
        let mut fixed = [""; 2];
        let len = labels.len().min(2);
        fixed[..len].copy_from_slice(&labels[..len]);
        self.push(def, tenant, Values::Fixed(fixed, len), value);
    }

    fn push(&mut self, def: &'static MetricDef, tenant: &'a str, values: Values<'a>, value: f64) {
        self.families
            .entry(def.name)
            .or_insert_with(|| Family {
                def,
                series: Vec::new(),
            })
            .series
            .push(Series {
                tenant,
                values,
                value,
            });
    }

    /// The families in text format, sorted by name and by label values (`tenant` first).
    /// Families without samples are left out. `capacity` is the expected length (the last
    /// render's), so that the text is not copied while it grows.
    pub fn render(mut self, capacity: usize) -> String {
        let mut out = String::with_capacity(capacity);
        for family in self.families.values_mut() {
            let def = family.def;
            // Mostly sorted already (tenants come in order, reports sort their keys): cheap.
            family.series.sort_by(|a, b| {
                a.tenant
                    .cmp(b.tenant)
                    .then_with(|| a.values.iter().cmp(b.values.iter()))
            });
            let kind = match def.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {} {}", def.name, escape_help(def.help));
            let _ = writeln!(out, "# TYPE {} {kind}", def.name);
            let mut series = family.series.iter().peekable();
            while let Some(first) = series.next() {
                let mut value = first.value;
                while let Some(same) = series.next_if(|next| {
                    next.tenant == first.tenant && next.values.iter().eq(first.values.iter())
                }) {
                    value += same.value;
                }
                out.push_str(def.name);
                out.push('{');
                let names = std::iter::once("tenant").chain(def.labels.iter().copied());
                let values = std::iter::once(first.tenant).chain(first.values.iter());
                for (index, (name, label)) in names.zip(values).enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{}\"", escape_label(label));
                }
                out.push_str("} ");
                push_value(&mut out, value);
                out.push('\n');
            }
        }
        out
    }
}

/// HELP text escapes backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', r"\\").replace('\n', r"\n")
}

/// Label values escape backslash, double quote and newline.
fn escape_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

/// Values as Go's Prometheus clients write them: `+Inf`, `-Inf`, `NaN`, otherwise the
/// shortest decimal that reads back as the same float.
fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

/// The first part of a gzip member: the header and the deflated text, flushed to a byte
/// boundary without a final block, plus the CRC and length the trailer needs.
pub struct GzipHead {
    pub bytes: Bytes,
    crc: Crc,
    len: u64,
}

/// gzip header: magic, deflate, no flags, no mtime, no extra flags, OS unknown (RFC 1952).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl GzipHead {
    /// Compresses the text that every scrape shares; done once per change of that text.
    pub fn new(text: &[u8]) -> GzipHead {
        let mut bytes = GZIP_HEADER.to_vec();
        // Sync flush ends on a byte boundary with a non-final block, so more deflate blocks
        // can follow.
        deflate(
            &mut Compress::new(Compression::default(), false),
            text,
            FlushCompress::Sync,
            &mut bytes,
        );
        let mut crc = Crc::new();
        crc.update(text);
        GzipHead {
            bytes: Bytes::from(bytes),
            crc,
            len: text.len() as u64,
        }
    }

    /// The rest of the member for `tail`, the text that follows the shared part: its deflate
    /// blocks, the final block and the trailer (CRC-32 and length of the whole text).
    pub fn finish(&self, tail: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(tail.len() / 3 + 64);
        deflate(
            &mut Compress::new(Compression::fast(), false),
            tail,
            FlushCompress::Finish,
            &mut out,
        );
        let mut crc = self.crc.clone();
        crc.update(tail);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        out.extend_from_slice(&((self.len + tail.len() as u64) as u32).to_le_bytes());
        Bytes::from(out)
    }
}

/// Runs `compress` over all of `input` with `flush`, appending to `out`.
fn deflate(compress: &mut Compress, input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) {
    let start = compress.total_in();
    loop {
        out.reserve(input.len() / 2 + 1024);
        let consumed = (compress.total_in() - start) as usize;
        let status = compress.compress_vec(&input[consumed..], out, flush);
        let consumed = (compress.total_in() - start) as usize;
        // A sync flush is complete once all input is in and the output was not full; a finish
        // once the stream ends. In-memory deflate only fails on misuse of the stream, a bug
        // that must not spin.
        let flushed = consumed == input.len()
            && out.len() < out.capacity()
            && !matches!(flush, FlushCompress::Finish);
        if flushed || matches!(status, Ok(Status::StreamEnd) | Err(_)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    static GAUGE: MetricDef = MetricDef {
        name: "test_users",
        help: "Users.\nWith a \\ backslash.",
        kind: Kind::Gauge,
        labels: &["method"],
    };
    static COUNTER: MetricDef = MetricDef {
        name: "test_events_total",
        help: "Events.",
        kind: Kind::Counter,
        labels: &[],
    };

    #[test]
    fn families_are_written_once_with_help_type_and_summed_duplicates() {
        let mut families = Families::default();
        let shared: Vec<Arc<str>> = vec![Arc::from("unknown")];
        families.add_fixed(&GAUGE, "t", &["sms"], 2.0);
        families.add_fixed(&COUNTER, "t", &[], 5.0);
        families.add(&GAUGE, "t", &shared, 1.0);
        families.add_fixed(&GAUGE, "t", &["unknown"], 3.0);
        families.add_fixed(&GAUGE, "t", &["say \"hi\"\\\nnow ü"], 0.5);
        assert_eq!(
            families.render(0),
            "# HELP test_events_total Events.\n\
             # TYPE test_events_total counter\n\
             test_events_total{tenant=\"t\"} 5\n\
             # HELP test_users Users.\\nWith a \\\\ backslash.\n\
             # TYPE test_users gauge\n\
             test_users{tenant=\"t\",method=\"say \\\"hi\\\"\\\\\\nnow ü\"} 0.5\n\
             test_users{tenant=\"t\",method=\"sms\"} 2\n\
             test_users{tenant=\"t\",method=\"unknown\"} 4\n"
        );
    }

    #[test]
    fn special_values_use_the_text_format_spelling() {
        let mut out = String::new();
        for value in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e21, 0.1, -3.0] {
            push_value(&mut out, value);
            out.push(' ');
        }
        assert_eq!(out, "+Inf -Inf NaN 1000000000000000000000 0.1 -3 ");
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn the_two_gzip_parts_are_one_member_of_the_whole_text() {
        let head: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        for tail in ["", "x", "process_cpu_seconds_total 1.5\n"] {
            let gzip = GzipHead::new(head.as_bytes());
            let mut member = gzip.bytes.to_vec();
            member.extend_from_slice(&gzip.finish(tail.as_bytes()));
            assert_eq!(gunzip(&member), format!("{head}{tail}").into_bytes());
            // A single member: a decoder that stops after the first member sees everything.
            let mut single = flate2::read::GzDecoder::new(&member[..]);
            let mut out = String::new();
            single.read_to_string(&mut out).unwrap();
            assert_eq!(out.len(), head.len() + tail.len());
        }
        let empty = GzipHead::new(b"");
        let mut member = empty.bytes.to_vec();
        member.extend_from_slice(&empty.finish(b"tail"));
        assert_eq!(gunzip(&member), b"tail");
    }
}
