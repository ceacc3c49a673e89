// The sticky units of one experiment: hash(unit id) -> arm, bounded.
//
// A set-associative table: a unit's hash picks one bucket of 8 slots, and when that bucket is
// full the unit least recently used in it (assigned or looked up) is evicted, so the table
// never holds more than `max_units` rounded up to a multiple of 8, 16 bytes a slot. An evicted
// unit that comes back is assigned again by the policy (it may get another arm). Recency is
// not journalled: after a restart the replayed assignments are in journal order, so which
// unit of a full bucket goes first may differ from before the restart.
//
// Storage is a vector of chunks of 4,096 buckets (512 KiB), allocated on first use and shared
// copy-on-write like the pending ring (pending.hpp): Capture() copies the chunk pointers, not
// the units, so a snapshot holds the experiment's lock for microseconds and serialises the
// units afterwards.
//
// Private to the bandit module; not thread-safe (the experiment's mutex guards it; a Capture
// may be read on any thread).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace evo::bandit {

class StickyUnits {
 public:
  static constexpr size_t kWays = 8;
  static constexpr size_t kChunkBuckets = 4096;

  struct Slot {
    uint64_t unit = 0;  // 0 = empty
    uint32_t stamp = 0;
    uint16_t arm = 0;
  };
  struct Bucket {
    std::array<Slot, kWays> slots;
  };
  struct Chunk {
    explicit Chunk(size_t n) : buckets(n) {}
    std::vector<Bucket> buckets;
  };
  struct Captured {
    std::vector<std::shared_ptr<const Chunk>> chunks;  // null where nothing was ever stored
  };

  // REQUIRES: max_units >= 1.
  explicit StickyUnits(uint64_t max_units = 1'000'000)
      : buckets_(std::max<uint64_t>(1, (max_units + kWays - 1) / kWays)),
        chunk_buckets_(static_cast<size_t>(std::min<uint64_t>(kChunkBuckets, buckets_))),
        chunks_((buckets_ + chunk_buckets_ - 1) / chunk_buckets_) {}

  // Units the table can hold: max_units rounded up to a multiple of 8.
  uint64_t capacity() const { return buckets_ * kWays; }
  uint64_t size() const { return size_; }

  // The arm of `unit`, which becomes the most recently used of its bucket; nullopt when it was
  // never assigned or was evicted.
  std::optional<uint16_t> Find(uint64_t unit) {
    unit = Key(unit);
    const uint64_t b = BucketOf(unit);
    const Chunk* chunk = chunks_[b / chunk_buckets_].get();
    if (chunk == nullptr) {
      return std::nullopt;
    }
    const Bucket& bucket = chunk->buckets[b % chunk_buckets_];
    for (size_t i = 0; i < kWays; ++i) {
      if (bucket.slots[i].unit == unit) {
        Slot& slot = Writable(b).slots[i];
        slot.stamp = ++clock_;
        return slot.arm;
      }
    }
    return std::nullopt;
  }

  // Assigns `arm` to `unit` (most recently used), evicting the least recently used unit of
  // its bucket when the bucket is full.
  void Set(uint64_t unit, uint16_t arm) {
    unit = Key(unit);
    Bucket& bucket = Writable(BucketOf(unit));
    Slot* victim = nullptr;
    for (Slot& slot : bucket.slots) {
      if (slot.unit == unit) {
        victim = &slot;
        break;
      }
      if (slot.unit == 0) {
        if (victim == nullptr || victim->unit != 0) {
          victim = &slot;
        }
        continue;
      }
      if (victim == nullptr ||
          (victim->unit != 0 && clock_ - slot.stamp > clock_ - victim->stamp)) {
        victim = &slot;
      }
    }
    if (victim->unit == 0) {
      ++size_;
    }
    victim->unit = unit;
    victim->arm = arm;
    victim->stamp = ++clock_;
  }

  // A view for a snapshot: cheap (shares the chunks); later writes copy a shared chunk.
  Captured Capture() const {
    Captured c;
    c.chunks.assign(chunks_.begin(), chunks_.end());
    return c;
  }

  // Writes the units through `write(std::string_view)`: u64 count, then count x {u64 unit,
  // u16 arm} (the snapshot's sticky encoding since version 1; recency is not kept).
  template <typename Write>
  static void Serialize(const Captured& c, Write&& write) {
    uint64_t count = 0;
    for (const auto& chunk : c.chunks) {
      if (chunk != nullptr) {
        for (const Bucket& b : chunk->buckets) {
          for (const Slot& s : b.slots) {
            count += s.unit != 0 ? 1 : 0;
          }
        }
      }
    }
    write(std::string_view(reinterpret_cast<const char*>(&count), sizeof count));
    std::string piece;
    for (const auto& chunk : c.chunks) {
      if (chunk == nullptr) {
        continue;
      }
      piece.clear();
      for (const Bucket& b : chunk->buckets) {
        for (const Slot& s : b.slots) {
          if (s.unit != 0) {
            piece.append(reinterpret_cast<const char*>(&s.unit), sizeof s.unit);
            piece.append(reinterpret_cast<const char*>(&s.arm), sizeof s.arm);
          }
        }
      }
      write(std::string_view(piece));
    }
  }

 private:
  static uint64_t Key(uint64_t unit) { return unit == 0 ? 1 : unit; }
  uint64_t BucketOf(uint64_t unit) const {
    // The unit ids' FNV hash, mixed (splitmix64's finaliser) so that every bit picks buckets.
    uint64_t z = unit;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (z ^ (z >> 31)) % buckets_;
  }
  // Bucket `b` for writing: allocates its chunk, and copies a chunk that a Capture shares.
  Bucket& Writable(uint64_t b) {
    std::shared_ptr<Chunk>& chunk = chunks_[b / chunk_buckets_];
    if (chunk == nullptr) {
      chunk = std::make_shared<Chunk>(chunk_buckets_);
    } else if (chunk.use_count() > 1) {
      chunk = std::make_shared<Chunk>(*chunk);
    }
    return chunk->buckets[b % chunk_buckets_];
  }

  uint64_t buckets_;
  size_t chunk_buckets_;
  std::vector<std::shared_ptr<Chunk>> chunks_;
  uint64_t size_ = 0;
  uint32_t clock_ = 0;  // recency stamps; compared as differences, so wrapping is harmless
};

}  // namespace evo::bandit
