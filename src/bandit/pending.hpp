// The pending-pull index of one experiment: pulls waiting for their reward, in sequence order.
// Pull sequence numbers are consecutive and pulls expire in the order they were made (one
// attribution window per experiment), so the index is a ring of 8-byte entries indexed by
// sequence: O(1) to add, find, credit and expire, never a scan. An entry stays after it
// expired (so a late reward can still be recorded, and a second one refused) until it is
// purged one more window later.
//
// Storage is a deque of fixed chunks of 65,536 entries (512 KiB) aligned on sequence
// numbers, shared copy-on-write: Capture() takes the chunk list in microseconds, and a
// snapshot serialises it outside the experiment's lock while pulls go on (a chunk that is
// written while captured is copied first). The snapshot encoding is lossless and compact
// (run-length expiry times, bit-packed arm and state: ~4 bits an entry with a few arms, see
// Serialize), so a snapshot of a 16M-entry ring writes ~8 MiB, not 128.
//
// Private to the bandit module; not thread-safe (the experiment's mutex guards it; a Capture
// may be read on any thread).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace evo::bandit {

enum class PullState : uint8_t { kPending = 0, kRewarded = 1, kExpired = 2, kLateRewarded = 3 };

class PendingIndex {
 public:
  struct Entry {
    uint32_t expiry_s = 0;  // seconds since the index's epoch at which a silent pull counts 0
    uint16_t arm = 0;
    PullState state = PullState::kPending;
  };
  static constexpr unsigned kChunkBits = 16;
  static constexpr uint64_t kChunkSize = uint64_t{1} << kChunkBits;
  struct Chunk {
    std::array<Entry, kChunkSize> entries;
  };

  // A consistent, immutable view of the index (see Capture).
  struct Captured {
    uint64_t base = 1;
    uint64_t cursor = 1;
    int64_t epoch_s = 0;
    uint64_t next = 1;
    uint64_t first_chunk = 0;
    std::vector<std::shared_ptr<const Chunk>> chunks;
  };

  // The next pull gets this sequence number.
  uint64_t next_seq() const { return next_; }
  // Oldest sequence still indexed; lower ones are purged.
  uint64_t base() const { return base_; }
  size_t size() const { return static_cast<size_t>(next_ - base_); }

  // Records pull next_seq() of `arm`, expiring at `expiry_unix_s`; returns its sequence.
  uint64_t Add(uint16_t arm, int64_t expiry_unix_s) {
    if (size() == 0 && epoch_s_ == 0) {
      epoch_s_ = expiry_unix_s;
    }
    const uint64_t seq = next_;
    *Slot(seq) = {Offset(expiry_unix_s), arm, PullState::kPending};
    ++next_;
    return seq;
  }

  // Puts back a pull with a known sequence (replaying a journal). Sequences below
  // next_seq() are ignored; a gap is filled with expired entries.
  void Restore(uint64_t seq, uint16_t arm, int64_t expiry_unix_s, PullState state) {
    if (size() == 0) {
      base_ = next_ = std::max(next_, seq);
      cursor_ = std::max(cursor_, base_);
      chunks_.clear();
      if (epoch_s_ == 0) {
        epoch_s_ = expiry_unix_s;
      }
    }
    while (next_ < seq) {
      *Slot(next_) = {Offset(expiry_unix_s), 0, PullState::kExpired};
      ++next_;
    }
    if (seq == next_) {
      *Slot(seq) = {Offset(expiry_unix_s), arm, state};
      ++next_;
    }
  }

  // The entry of `seq` for reading and writing, or nullptr when it was purged or never
  // issued.
  Entry* Find(uint64_t seq) {
    if (seq < base_ || seq >= next_) {
      return nullptr;
    }
    return Slot(seq);
  }

  // Calls on_expire(seq, arm) for each pending pull whose window ended at or before `now_s`,
  // marking it expired (oldest first, stopping at the first that has not expired, or when
  // on_expire returns false, leaving that pull pending). Each seq is reported once: a cursor
  // remembers how far expiry has gone. Looks at `max_steps` entries at most (all the pulls
  // of one second expire together, so a caller holding a lock can take them in slices);
  // returns true when it stopped there, with due pulls possibly left.
  template <typename F>
  bool Expire(int64_t now_s, F&& on_expire,
              uint64_t max_steps = std::numeric_limits<uint64_t>::max()) {
    for (; cursor_ < next_; ++cursor_, --max_steps) {
      if (max_steps == 0) {
        return true;
      }
      const Entry& peek = Read(cursor_);
      if (Unix(peek.expiry_s) > now_s) {
        break;
      }
      if (peek.state == PullState::kPending) {
        if (!on_expire(cursor_, peek.arm)) {
          break;
        }
        Slot(cursor_)->state = PullState::kExpired;
      }
    }
    return false;
  }

  // Drops entries whose window ended more than `keep_s` seconds before `now_s`, at most
  // `max_steps` of them; returns true when it stopped there.
  bool Purge(int64_t now_s, int64_t keep_s,
             uint64_t max_steps = std::numeric_limits<uint64_t>::max()) {
    bool stopped = false;
    while (base_ < cursor_ && Unix(Read(base_).expiry_s) + keep_s <= now_s) {
      if (max_steps-- == 0) {
        stopped = true;
        break;
      }
      ++base_;
    }
    while (!chunks_.empty() && (first_chunk_ + 1) << kChunkBits <= base_) {
      chunks_.pop_front();
      ++first_chunk_;
    }
    return stopped;
  }

  // Calls on_expire(seq, arm) for each pending pull below `end`, whether its window ended or
  // not, marking it expired (oldest first, as Expire; the cap on an experiment's pending pulls
  // uses it). Returns false when on_expire refused one, which is left pending.
  template <typename F>
  bool ExpireBefore(uint64_t end, F&& on_expire) {
    for (; cursor_ < next_ && cursor_ < end; ++cursor_) {
      const Entry& peek = Read(cursor_);
      if (peek.state == PullState::kPending) {
        if (!on_expire(cursor_, peek.arm)) {
          return false;
        }
        Slot(cursor_)->state = PullState::kExpired;
      }
    }
    return true;
  }

  // Drops the entries below `seq` that expiry has passed (those at or past the cursor stay),
  // whatever their age: a later reward for one of them is refused as purged.
  void DropBefore(uint64_t seq) {
    base_ = std::max(base_, std::min(seq, cursor_));
    while (!chunks_.empty() && (first_chunk_ + 1) << kChunkBits <= base_) {
      chunks_.pop_front();
      ++first_chunk_;
    }
  }

  // True when every indexed entry's arm is below `arms` (checking a loaded snapshot).
  bool AllArmsBelow(size_t arms) const {
    for (uint64_t seq = base_; seq < next_; ++seq) {
      if (Read(seq).arm >= arms) {
        return false;
      }
    }
    return true;
  }

  // Marks expiry as done up to `seq` (replay: an expiry record was seen).
  void SetCursorAtLeast(uint64_t seq) { cursor_ = std::max(cursor_, seq); }
  uint64_t cursor() const { return cursor_; }

  int64_t Unix(uint32_t offset) const { return epoch_s_ + offset; }

  // A view for a snapshot: cheap (shares the chunks); later writes copy a shared chunk.
  Captured Capture() const {
    Captured c{base_, cursor_, epoch_s_, next_, first_chunk_, {}};
    c.chunks.assign(chunks_.begin(), chunks_.end());
    return c;
  }

  // The snapshot encodings Deserialize reads; Serialize writes kFormat.
  static constexpr uint32_t kFormatV1 = 1;  // 8 bytes an entry (snapshots "EOBSNAP1")
  static constexpr uint32_t kFormat = 2;    // compact (snapshots "EOBSNAP2")

  // Writes the index through `write(std::string_view)`, one piece per chunk, in kFormat: a
  // lossless encoding of 2 + log2(arms) bits an entry instead of 64 (4 bits with 3 or 4 arms,
  // 12 with 1000). Expiry times come in long runs (all the pulls of one second share theirs),
  // so they are run-length encoded; arm and state are bit-packed at the width that the
  // largest arm of the chunk needs:
  //   header   u64 base, u64 cursor, i64 epoch_s, u64 count
  //   then, for each chunk's share of the sequences [base, base + count), in order:
  //     u32 runs, u32 width (2..18 bits an entry)
  //     runs x {u32 expiry offset, u32 length}   (the lengths add up to the share)
  //     ceil(share x width / 64) u64 words: entry i's (arm << 2 | state) at bit i x width
  // Little-endian hosts only (x86-64, aarch64), like the journal.
  template <typename Write>
  static void Serialize(const Captured& c, Write&& write) {
    const uint64_t header[4] = {c.base, c.cursor, static_cast<uint64_t>(c.epoch_s),
                                c.next - c.base};
    write(std::string_view(reinterpret_cast<const char*>(header), sizeof header));
    std::string piece;
    piece.reserve(kChunkSize * 18 / 8 + 64);
    for (uint64_t seq = c.base; seq < c.next;) {
      const uint64_t end = std::min(c.next, ((seq >> kChunkBits) + 1) << kChunkBits);
      const Chunk& chunk = *c.chunks[(seq >> kChunkBits) - c.first_chunk];
      piece.clear();
      EncodeSegment(&chunk.entries[seq & (kChunkSize - 1)], static_cast<size_t>(end - seq), piece);
      write(std::string_view(piece));
      seq = end;
    }
  }
  static void Serialize(const Captured& c, std::string& out) {
    Serialize(c, [&out](std::string_view piece) { out.append(piece); });
  }
  void Serialize(std::string& out) const { Serialize(Capture(), out); }

  // Replaces the index with one that Serialize wrote in `format` (kFormat or kFormatV1),
  // consuming it from the front of `in`. False when `in` is truncated or malformed (the
  // index is then unspecified).
  bool Deserialize(std::string_view& in, uint32_t format = kFormat) {
    uint64_t header[4];
    if (in.size() < sizeof header) {
      return false;
    }
    std::memcpy(header, in.data(), sizeof header);
    in.remove_prefix(sizeof header);
    const uint64_t base = header[0];
    const uint64_t cursor = header[1];
    const uint64_t count = header[3];
    // Every entry takes at least 8 bytes (V1) or 2 bits (kFormat) of `in`.
    const uint64_t most = format == kFormatV1 ? in.size() / 8 : in.size() * 4;
    if ((format != kFormat && format != kFormatV1) || base == 0 || count > most ||
        base > std::numeric_limits<uint64_t>::max() - count || cursor < base ||
        cursor > base + count) {
      return false;
    }
    chunks_.clear();
    base_ = next_ = base;
    first_chunk_ = base_ >> kChunkBits;
    cursor_ = cursor;
    epoch_s_ = static_cast<int64_t>(header[2]);
    const uint64_t end = base + count;
    if (format == kFormatV1) {
      for (; next_ < end; ++next_) {
        Entry e;
        std::memcpy(&e.expiry_s, in.data(), 4);
        std::memcpy(&e.arm, in.data() + 4, 2);
        const auto state = static_cast<uint8_t>(in[6]);
        if (state > 3) {
          return false;
        }
        e.state = static_cast<PullState>(state);
        *Slot(next_) = e;
        in.remove_prefix(8);
      }
      return true;
    }
    while (next_ < end) {
      const uint64_t stop = std::min(end, ((next_ >> kChunkBits) + 1) << kChunkBits);
      if (!DecodeSegment(in, static_cast<size_t>(stop - next_), Slot(next_))) {
        return false;
      }
      next_ = stop;
    }
    return true;
  }

 private:
  // One chunk's share of a kFormat snapshot (see Serialize): `n` consecutive entries.
  static void EncodeSegment(const Entry* e, size_t n, std::string& out) {
    const size_t head = out.size();
    out.resize(head + 8);
    uint32_t runs = 0;
    uint16_t max_arm = 0;
    for (size_t i = 0; i < n;) {
      const uint32_t expiry = e[i].expiry_s;
      size_t j = i;
      for (; j < n && e[j].expiry_s == expiry; ++j) {
        max_arm = std::max(max_arm, e[j].arm);
      }
      const auto length = static_cast<uint32_t>(j - i);  // n <= kChunkSize
      char run[8];
      std::memcpy(run, &expiry, 4);
      std::memcpy(run + 4, &length, 4);
      out.append(run, 8);
      ++runs;
      i = j;
    }
    const uint32_t width = 2 + static_cast<uint32_t>(std::bit_width(max_arm));
    std::memcpy(out.data() + head, &runs, 4);
    std::memcpy(out.data() + head + 4, &width, 4);
    const size_t at = out.size();
    out.resize(at + (n * width + 63) / 64 * 8);
    char* p = out.data() + at;
    uint64_t word = 0;
    uint32_t used = 0;  // bits of `word` filled
    for (size_t i = 0; i < n; ++i) {
      const uint64_t v = uint64_t{e[i].arm} << 2 | static_cast<uint8_t>(e[i].state);
      word |= v << used;
      used += width;
      if (used >= 64) {
        std::memcpy(p, &word, 8);
        p += 8;
        used -= 64;
        word = v >> (width - used);  // the bits that did not fit; 0 when none
      }
    }
    if (used > 0) {
      std::memcpy(p, &word, 8);
    }
  }

  // Reads one chunk's share of `n` entries into `out` (consecutive slots of one chunk).
  static bool DecodeSegment(std::string_view& in, size_t n, Entry* out) {
    uint32_t runs = 0;
    uint32_t width = 0;
    if (in.size() < 8) {
      return false;
    }
    std::memcpy(&runs, in.data(), 4);
    std::memcpy(&width, in.data() + 4, 4);
    in.remove_prefix(8);
    if (width < 2 || width > 18 || runs > n || in.size() / 8 < runs) {
      return false;
    }
    size_t filled = 0;
    for (uint32_t r = 0; r < runs; ++r) {
      uint32_t expiry = 0;
      uint32_t length = 0;
      std::memcpy(&expiry, in.data(), 4);
      std::memcpy(&length, in.data() + 4, 4);
      in.remove_prefix(8);
      if (length > n - filled) {
        return false;
      }
      for (size_t i = filled; i < filled + length; ++i) {
        out[i].expiry_s = expiry;
      }
      filled += length;
    }
    const size_t words = (n * width + 63) / 64;
    if (filled != n || in.size() / 8 < words) {
      return false;
    }
    const uint64_t mask = (uint64_t{1} << width) - 1;
    const char* p = in.data();
    for (size_t i = 0; i < n; ++i) {
      const size_t bit = i * width;
      const size_t shift = bit & 63;
      uint64_t w = 0;
      std::memcpy(&w, p + (bit >> 6) * 8, 8);
      uint64_t v = w >> shift;
      if (shift + width > 64) {
        std::memcpy(&w, p + (bit >> 6) * 8 + 8, 8);
        v |= w << (64 - shift);
      }
      v &= mask;
      out[i].arm = static_cast<uint16_t>(v >> 2);
      out[i].state = static_cast<PullState>(v & 3);
    }
    in.remove_prefix(words * 8);
    return true;
  }

  uint32_t Offset(int64_t unix_s) const {
    const int64_t d = unix_s - epoch_s_;
    return d < 0 ? 0 : static_cast<uint32_t>(d);
  }

  const Entry& Read(uint64_t seq) const {
    return chunks_[(seq >> kChunkBits) - first_chunk_]->entries[seq & (kChunkSize - 1)];
  }

  // The slot of `seq` (base_ <= seq <= next_), writable: allocates the chunk at the end, and
  // copies a chunk that a Capture still shares.
  Entry* Slot(uint64_t seq) {
    const uint64_t c = seq >> kChunkBits;
    if (chunks_.empty()) {
      first_chunk_ = c;
    }
    while (first_chunk_ + chunks_.size() <= c) {
      chunks_.push_back(std::make_shared<Chunk>());
    }
    std::shared_ptr<Chunk>& chunk = chunks_[c - first_chunk_];
    if (chunk.use_count() > 1) {
      chunk = std::make_shared<Chunk>(*chunk);
    }
    return &chunk->entries[seq & (kChunkSize - 1)];
  }

  std::deque<std::shared_ptr<Chunk>> chunks_;
  uint64_t first_chunk_ = 0;  // chunk number of chunks_.front() (sequence >> kChunkBits)
  uint64_t base_ = 1;         // oldest sequence kept
  uint64_t next_ = 1;         // sequence of the next pull
  uint64_t cursor_ = 1;       // every pull below it has been considered for expiry
  int64_t epoch_s_ = 0;
};

}  // namespace evo::bandit
