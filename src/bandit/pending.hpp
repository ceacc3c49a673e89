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
// written while captured is copied first).
//
// Private to the bandit module; not thread-safe (the experiment's mutex guards it; a Capture
// may be read on any thread).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
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
  // remembers how far expiry has gone.
  template <typename F>
  void Expire(int64_t now_s, F&& on_expire) {
    while (cursor_ < next_) {
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
      ++cursor_;
    }
  }

  // Drops entries whose window ended more than `keep_s` seconds before `now_s`.
  void Purge(int64_t now_s, int64_t keep_s) {
    while (base_ < cursor_ && Unix(Read(base_).expiry_s) + keep_s <= now_s) {
      ++base_;
    }
    while (!chunks_.empty() && (first_chunk_ + 1) << kChunkBits <= base_) {
      chunks_.pop_front();
      ++first_chunk_;
    }
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

  // Writes the index (a header, then 8 bytes per entry) through `write(std::string_view)`
  // in pieces of at most one chunk; Deserialize reads it back.
  template <typename Write>
  static void Serialize(const Captured& c, Write&& write) {
    const uint64_t header[4] = {c.base, c.cursor, static_cast<uint64_t>(c.epoch_s),
                                c.next - c.base};
    write(std::string_view(reinterpret_cast<const char*>(header), sizeof header));
    std::string piece;
    piece.reserve(kChunkSize * 8);
    for (uint64_t seq = c.base; seq < c.next; ++seq) {
      const Entry& e =
          c.chunks[(seq >> kChunkBits) - c.first_chunk]->entries[seq & (kChunkSize - 1)];
      char b[8];
      std::memcpy(b, &e.expiry_s, 4);
      std::memcpy(b + 4, &e.arm, 2);
      b[6] = static_cast<char>(e.state);
      b[7] = 0;
      piece.append(b, 8);
      if (piece.size() == kChunkSize * 8) {
        write(std::string_view(piece));
        piece.clear();
      }
    }
    write(std::string_view(piece));
  }
  static void Serialize(const Captured& c, std::string& out) {
    Serialize(c, [&out](std::string_view piece) { out.append(piece); });
  }
  void Serialize(std::string& out) const { Serialize(Capture(), out); }

  bool Deserialize(std::string_view& in) {
    uint64_t header[4];
    if (in.size() < sizeof header) {
      return false;
    }
    std::memcpy(header, in.data(), sizeof header);
    in.remove_prefix(sizeof header);
    if (header[0] == 0 || header[3] > in.size() / 8 || header[1] < header[0] ||
        header[1] > header[0] + header[3]) {
      return false;
    }
    chunks_.clear();
    base_ = next_ = header[0];
    first_chunk_ = base_ >> kChunkBits;
    cursor_ = header[1];
    epoch_s_ = static_cast<int64_t>(header[2]);
    for (uint64_t i = 0; i < header[3]; ++i) {
      Entry e;
      std::memcpy(&e.expiry_s, in.data(), 4);
      std::memcpy(&e.arm, in.data() + 4, 2);
      const auto state = static_cast<uint8_t>(in[6]);
      if (state > 3) {
        return false;
      }
      e.state = static_cast<PullState>(state);
      *Slot(next_) = e;
      ++next_;
      in.remove_prefix(8);
    }
    return true;
  }

 private:
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
