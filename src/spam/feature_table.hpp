// An open-addressing hash map from 64-bit feature hashes to dense uint32 indices: the
// lookup on the classification hot path (one probe for most features), and the
// vocabulary builder during training. Private to the spam module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace evo::spam {

class FeatureTable {
 public:
  static constexpr uint32_t kMissing = 0xffffffffu;

  FeatureTable() { Reset(16); }

  // The index of `key`, or kMissing.
  uint32_t Find(uint64_t key) const {
    key = Key(key);
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) {
        return slots_[i].value;
      }
      if (slots_[i].key == 0) {
        return kMissing;
      }
    }
  }

  // The index of `key`, inserting it with index size() when absent.
  uint32_t Insert(uint64_t key) {
    if ((size_ + 1) * 10 > slots_.size() * 7) {
      Rehash(slots_.size() * 2);
    }
    const uint64_t k = Key(key);
    size_t i = Slot(k);
    for (; slots_[i].key != 0; i = (i + 1) & mask_) {
      if (slots_[i].key == k) {
        return slots_[i].value;
      }
    }
    slots_[i] = {k, static_cast<uint32_t>(size_)};
    return static_cast<uint32_t>(size_++);
  }

  size_t size() const { return size_; }

  // Capacity for `n` keys without growing.
  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap * 7 < n * 10) {
      cap *= 2;
    }
    if (cap > slots_.size()) {
      Rehash(cap);
    }
  }

 private:
  // 0 marks an empty slot, so the (astronomically rare) zero hash is stored as 1.
  static uint64_t Key(uint64_t key) { return key == 0 ? 1 : key; }
  size_t Slot(uint64_t key) const { return static_cast<size_t>((key ^ (key >> 29)) & mask_); }

  // Key and value side by side: one cache line per probe.
  struct Entry {
    uint64_t key = 0;  // 0 = empty
    uint32_t value = 0;
  };

  void Reset(size_t capacity) {
    slots_.assign(capacity, Entry{});
    mask_ = capacity - 1;
  }
  void Rehash(size_t capacity) {
    std::vector<Entry> old = std::move(slots_);
    Reset(capacity);
    for (const Entry& e : old) {
      if (e.key != 0) {
        size_t i = Slot(e.key);
        while (slots_[i].key != 0) {
          i = (i + 1) & mask_;
        }
        slots_[i] = e;
      }
    }
  }

  std::vector<Entry> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace evo::spam
