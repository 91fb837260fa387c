//! Reading a whole image before it goes live (issue 10 item 7): every data
//! block and every fragment block of every file is read and decompressed,
//! and must come out exactly as long as the inode says. An image whose
//! superblock and directory tables are fine but whose data is damaged
//! (what `unsquashfs` reports as "failed to uncompress") is refused, naming
//! the first file (in the order of the image) that cannot be read.
//!
//! The blocks are read straight from the file with `pread` and decompressed
//! with `backhand`'s decompressor into a buffer that is then dropped: no
//! extraction to disk, and memory bounded by one block (unlike reading
//! every file through `backhand`'s file reader, which keeps every fragment
//! it decompressed). Work is done in the order of the data on disk, each
//! block once: files that share blocks (mksquashfs deduplicates) and
//! fragments that many small files share are read once.
//!
//! What this cannot see: squashfs has no checksums, so damage inside a
//! block stored *uncompressed* (data mksquashfs could not compress, or an
//! image packed with `-noD`) reads back as wrong bytes of the right length.
//! Compressed blocks are checked by the decompressor itself (zlib's Adler-32
//! for gzip, xz's CRC, zstd's frame structure) and by their length.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backhand::compression::{CompressionAction, DefaultCompressor};
use backhand::{DataSize, InnerNode, SquashfsFileReader};
use indicatif::ProgressBar;

use crate::error::{io_reason, InstallError, Result};
use crate::image::EnvImage;

/// `frag_index` of a file without a fragment.
const NO_FRAGMENT: usize = 0xffff_ffff;

/// What a verification read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Regular files in the image.
    pub files: u64,
    /// Data blocks and fragment blocks read (each once).
    pub blocks: u64,
    /// Bytes read from the image (compressed sizes).
    pub bytes_read: u64,
    /// Bytes the blocks decompressed to.
    pub bytes_out: u64,
    pub elapsed: Duration,
}

impl Verified {
    /// `12,345 files, 1.2 GiB of data (0.4 GiB compressed) in 3.1 s`.
    pub fn describe(&self) -> String {
        format!(
            "{} files, {} of data ({} in the image) read in {:.1} s",
            self.files,
            human_bytes(self.bytes_out),
            human_bytes(self.bytes_read),
            self.elapsed.as_secs_f64()
        )
    }
}

/// One run of blocks to read, at its offset in the image.
enum Item<'a> {
    /// The data blocks of a file (and of every file deduplicated onto them).
    Blocks {
        start: u64,
        path: &'a Path,
        file: &'a SquashfsFileReader,
    },
    /// A fragment block: `need` bytes of it are used by the files sharing
    /// it; `path` is the first of them (in the image's order), `longest`
    /// the one that needs the most.
    Fragment {
        index: usize,
        start: u64,
        size: DataSize,
        need: u64,
        path: &'a Path,
        longest: &'a Path,
    },
}

impl Item<'_> {
    fn start(&self) -> u64 {
        match self {
            Item::Blocks { start, .. } | Item::Fragment { start, .. } => *start,
        }
    }

    fn raw_len(&self) -> u64 {
        match self {
            Item::Blocks { file, .. } => file.block_sizes().iter().map(|b| u64::from(b.size())).sum(),
            Item::Fragment { size, .. } => u64::from(size.size()),
        }
    }
}

/// Read and decompress every data block of `image`; `progress` advances by
/// the bytes read (its length is set here). The error names the image, the
/// first file that cannot be read and why.
pub fn verify(image: &EnvImage, progress: &ProgressBar) -> Result<Verified> {
    let started = Instant::now();
    let fs = image.reader();
    let corrupt = |inner: &Path, why: String| corrupt_error(image.path(), inner, why);
    let block_size = u64::from(fs.block_size);
    let fragments = fs.fragments.as_deref().unwrap_or_default();

    // What is to be read, each run of blocks once.
    let mut items = Vec::new();
    let mut seen_blocks = HashSet::new();
    let mut used_fragments: BTreeMap<usize, (u64, &Path, &Path)> = BTreeMap::new();
    let mut files = 0u64;
    for node in fs.files() {
        let InnerNode::File(file) = &node.inner else { continue };
        files += 1;
        let path = node.fullpath.as_path();
        let len = file.file_len() as u64;
        let blocks = file.block_sizes().len() as u64;
        let in_blocks = len.min(blocks.saturating_mul(block_size));
        if blocks > 0 && blocks.saturating_sub(1).saturating_mul(block_size) >= len {
            return Err(corrupt(
                path,
                format!("its inode lists {blocks} blocks for {len} bytes"),
            ));
        }
        if file.frag_index() == NO_FRAGMENT {
            if in_blocks != len {
                return Err(corrupt(
                    path,
                    format!("its inode lists {blocks} blocks and no fragment for {len} bytes"),
                ));
            }
        } else {
            let index = file.frag_index();
            if index >= fragments.len() {
                return Err(corrupt(
                    path,
                    format!(
                        "its fragment {index} is not in the fragment table ({} entries)",
                        fragments.len()
                    ),
                ));
            }
            let need = u64::from(file.block_offset()) + (len - in_blocks);
            let entry = used_fragments.entry(index).or_insert((0, path, path));
            if need > entry.0 {
                entry.0 = need;
                entry.2 = path;
            }
        }
        if blocks > 0 && seen_blocks.insert((file.blocks_start(), blocks)) {
            items.push(Item::Blocks {
                start: file.blocks_start(),
                path,
                file,
            });
        }
    }
    for (index, (need, path, longest)) in used_fragments {
        let Some(fragment) = fragments.get(index) else { continue };
        items.push(Item::Fragment {
            index,
            start: fragment.start,
            size: fragment.size,
            need,
            path,
            longest,
        });
    }
    items.sort_by_key(Item::start);

    let total: u64 = items.iter().map(Item::raw_len).sum();
    progress.set_length(total);
    let raw_file = File::open(image.path()).map_err(|e| InstallError::Image {
        path: image.path().to_path_buf(),
        reason: format!("cannot open: {}", io_reason(&e)),
    })?;
    let job = Job {
        file: &raw_file,
        image: image.path(),
        compressor: fs.compressor,
        block_size,
        progress,
        first_bad: AtomicUsize::new(usize::MAX),
    };
    // Decompression is what costs: contiguous slices of the work, of about
    // equal bytes, one per core; each thread reads its slice in order.
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_THREADS)
        .min(items.len().max(1));
    let slices = split(&items, total, threads);
    let outcomes: Vec<std::result::Result<Verified, (usize, InstallError)>> = if slices.len() <= 1 {
        vec![job.run(&items, 0)]
    } else {
        std::thread::scope(|scope| {
            let job = &job;
            let handles: Vec<_> = slices
                .iter()
                .map(|&(base, slice)| scope.spawn(move || job.run(slice, base)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err((
                            usize::MAX,
                            InstallError::Image {
                                path: image.path().to_path_buf(),
                                reason: "the verifying thread failed".into(),
                            },
                        ))
                    })
                })
                .collect()
        })
    };
    let mut verified = Verified {
        files,
        ..Verified::default()
    };
    let mut first_error: Option<(usize, InstallError)> = None;
    for outcome in outcomes {
        match outcome {
            Ok(part) => {
                verified.blocks += part.blocks;
                verified.bytes_read += part.bytes_read;
                verified.bytes_out += part.bytes_out;
            }
            Err((index, e)) => {
                let earlier = matches!(&first_error, Some((first, _)) if *first < index);
                if !earlier {
                    first_error = Some((index, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    verified.elapsed = started.elapsed();
    Ok(verified)
}

/// Threads used at most (a login node's cores are shared).
const MAX_THREADS: usize = 8;

/// `items` cut into at most `parts` contiguous slices of about equal bytes,
/// each with the index of its first item.
fn split<'i, 'a>(items: &'i [Item<'a>], total: u64, parts: usize) -> Vec<(usize, &'i [Item<'a>])> {
    let share = total / parts.max(1) as u64 + 1;
    let mut slices = Vec::new();
    let (mut begin, mut bytes) = (0, 0u64);
    for (i, item) in items.iter().enumerate() {
        bytes += item.raw_len();
        if bytes >= share && slices.len() + 1 < parts {
            slices.push((begin, &items[begin..=i]));
            (begin, bytes) = (i + 1, 0);
        }
    }
    if begin < items.len() {
        slices.push((begin, &items[begin..]));
    }
    slices
}

/// What every verifying thread shares.
struct Job<'a> {
    file: &'a File,
    image: &'a Path,
    compressor: backhand::compression::Compressor,
    block_size: u64,
    progress: &'a ProgressBar,
    /// The index of the first item found bad so far: items after it need
    /// not be read (the error names the first bad file in the image).
    first_bad: AtomicUsize,
}

impl Job<'_> {
    fn corrupt(&self, inner: &Path, why: String) -> InstallError {
        corrupt_error(self.image, inner, why)
    }

    /// Read `items`, the first of which is item `base`; the error comes with
    /// the index of the bad item.
    fn run(&self, items: &[Item], base: usize) -> std::result::Result<Verified, (usize, InstallError)> {
        let mut reader = BlockReader {
            file: self.file,
            compressor: self.compressor,
            block_size: self.block_size,
            raw: Vec::new(),
            out: Vec::new(),
        };
        let mut verified = Verified::default();
        for (k, item) in items.iter().enumerate() {
            let index = base + k;
            if index > self.first_bad.load(Ordering::Relaxed) {
                break;
            }
            self.read_item(item, &mut reader, &mut verified).map_err(|e| {
                self.first_bad.fetch_min(index, Ordering::Relaxed);
                (index, e)
            })?;
        }
        Ok(verified)
    }

    fn read_item(&self, item: &Item, reader: &mut BlockReader, verified: &mut Verified) -> Result<()> {
        let block_size = self.block_size;
        match item {
            Item::Blocks { start, path, file } => {
                let len = file.file_len() as u64;
                let mut at = *start;
                for (i, size) in file.block_sizes().iter().enumerate() {
                    let stored = u64::from(size.size());
                    if stored == 0 {
                        // A sparse block: zeros, nothing stored.
                        continue;
                    }
                    let expected = block_size.min(len - i as u64 * block_size);
                    let out = reader
                        .read(at, *size, expected, expected)
                        .map_err(|why| self.corrupt(path, format!("block {i} at byte {at} of the image: {why}")))?;
                    verified.blocks += 1;
                    verified.bytes_read += stored;
                    verified.bytes_out += out;
                    at += stored;
                    self.progress.inc(stored);
                }
            }
            Item::Fragment {
                index,
                start,
                size,
                need,
                path,
                longest,
            } => {
                let out = reader.read(*start, *size, *need, block_size).map_err(|why| {
                    let whose = if why.short { longest } else { path };
                    self.corrupt(
                        whose,
                        format!("fragment block {index} at byte {start} of the image: {}", why.text),
                    )
                })?;
                verified.blocks += 1;
                verified.bytes_read += u64::from(size.size());
                verified.bytes_out += out;
                self.progress.inc(u64::from(size.size()));
            }
        }
        Ok(())
    }
}

fn corrupt_error(image: &Path, inner: &Path, why: String) -> InstallError {
    InstallError::Image {
        path: image.to_path_buf(),
        reason: format!("corrupt: cannot read {} from it: {why}; pack it again", inner.display()),
    }
}

/// Why a block could not be read; `short`: it decompressed, but to fewer
/// bytes than a file needs.
struct BadBlock {
    text: String,
    short: bool,
}

impl std::fmt::Display for BadBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl BadBlock {
    fn new(text: String) -> BadBlock {
        BadBlock { text, short: false }
    }
}

struct BlockReader<'a> {
    file: &'a File,
    compressor: backhand::compression::Compressor,
    block_size: u64,
    raw: Vec<u8>,
    out: Vec<u8>,
}

impl BlockReader<'_> {
    /// Read the block stored at `at` (`size`), decompress it, and check that
    /// it holds between `min` and `max` bytes; returns its length.
    fn read(&mut self, at: u64, size: DataSize, min: u64, max: u64) -> std::result::Result<u64, BadBlock> {
        let stored = u64::from(size.size());
        if stored > self.block_size {
            return Err(BadBlock::new(format!(
                "its stored size {stored} is larger than the block size {}",
                self.block_size
            )));
        }
        self.raw.resize(stored as usize, 0);
        self.file
            .read_exact_at(&mut self.raw, at)
            .map_err(|e| BadBlock::new(format!("cannot read {stored} bytes: {}", io_reason(&e))))?;
        let len = if size.uncompressed() {
            stored
        } else {
            self.out.clear();
            // zstd decompresses into the spare capacity only.
            self.out.reserve(self.block_size as usize);
            DefaultCompressor
                .decompress(&self.raw, &mut self.out, self.compressor)
                .map_err(|e| {
                    BadBlock::new(format!(
                        "does not decompress ({}): {}",
                        format!("{:?}", self.compressor).to_lowercase(),
                        decompress_error(e)
                    ))
                })?;
            self.out.len() as u64
        };
        if len > max {
            return Err(BadBlock::new(format!(
                "decompresses to {len} bytes, more than the {max} it may hold"
            )));
        }
        if len < min {
            return Err(BadBlock {
                text: format!("holds {len} bytes, the file needs {min}"),
                short: true,
            });
        }
        Ok(len)
    }
}

fn decompress_error(e: backhand::BackhandError) -> String {
    match e {
        backhand::BackhandError::StdIo(e) => io_reason(&e),
        other => other.to_string(),
    }
}

/// `1.2 GiB`, `340.0 MiB`, `12 KiB`, `100 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
