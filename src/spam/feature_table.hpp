// An open-addressing hash map from 64-bit feature hashes to dense uint32 indices: the
// lookup on the classification hot path (one probe for most features), and the
// vocabulary builder during training. Private to the spam module.
#pragma once

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
      if (keys_[i] == key) {
        return values_[i];
      }
      if (keys_[i] == 0) {
        return kMissing;
      }
    }
  }

  // The index of `key`, inserting it with index size() when absent.
  uint32_t Insert(uint64_t key) {
    if ((size_ + 1) * 10 > keys_.size() * 7) {
      Grow();
    }
    const uint64_t k = Key(key);
    size_t i = Slot(k);
    for (; keys_[i] != 0; i = (i + 1) & mask_) {
      if (keys_[i] == k) {
        return values_[i];
      }
    }
    keys_[i] = k;
    values_[i] = static_cast<uint32_t>(size_);
    return static_cast<uint32_t>(size_++);
  }

  size_t size() const { return size_; }

  // Capacity for `n` keys without growing.
  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap * 7 < n * 10) {
      cap *= 2;
    }
    if (cap > keys_.size()) {
      Rehash(cap);
    }
  }

 private:
  // 0 marks an empty slot, so the (astronomically rare) zero hash is stored as 1.
  static uint64_t Key(uint64_t key) { return key == 0 ? 1 : key; }
  size_t Slot(uint64_t key) const { return static_cast<size_t>((key ^ (key >> 29)) & mask_); }

  void Reset(size_t capacity) {
    keys_.assign(capacity, 0);
    values_.assign(capacity, 0);
    mask_ = capacity - 1;
  }
  void Grow() { Rehash(keys_.size() * 2); }
  void Rehash(size_t capacity) {
    std::vector<uint64_t> keys = std::move(keys_);
    std::vector<uint32_t> values = std::move(values_);
    Reset(capacity);
    for (size_t j = 0; j < keys.size(); ++j) {
      if (keys[j] != 0) {
        size_t i = Slot(keys[j]);
        while (keys_[i] != 0) {
          i = (i + 1) & mask_;
        }
        keys_[i] = keys[j];
        values_[i] = values[j];
      }
    }
  }

  std::vector<uint64_t> keys_;
  std::vector<uint32_t> values_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace evo::spam
