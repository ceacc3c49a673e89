// The pending-pull index of one experiment: pulls waiting for their reward, in sequence order.
// Pull sequence numbers are consecutive and pulls expire in the order they were made (one
// attribution window per experiment), so the index is a ring of 8-byte entries indexed by
// sequence: O(1) to add, find, credit and expire, never a scan. An entry stays after it
// expired (so a late reward can still be recorded, and a second one refused) until it is
// purged one more window later. Private to the bandit module; not thread-safe (the
// experiment's mutex guards it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace evo::bandit {

enum class PullState : uint8_t { kPending = 0, kRewarded = 1, kExpired = 2, kLateRewarded = 3 };

class PendingIndex {
 public:
  struct Entry {
    uint32_t expiry_s = 0;  // seconds since `epoch_s` at which a silent pull counts as 0
    uint16_t arm = 0;
    PullState state = PullState::kPending;
  };

  // The next pull gets this sequence number.
  uint64_t next_seq() const { return base_ + entries_.size(); }
  // Oldest sequence still indexed; lower ones are purged.
  uint64_t base() const { return base_; }
  size_t size() const { return entries_.size(); }

  // Records pull next_seq() of `arm`, expiring at `expiry_unix_s`; returns its sequence.
  uint64_t Add(uint16_t arm, int64_t expiry_unix_s) {
    if (entries_.empty() && epoch_s_ == 0) {
      epoch_s_ = expiry_unix_s;
    }
    entries_.push_back({Offset(expiry_unix_s), arm, PullState::kPending});
    return next_seq() - 1;
  }
  // Puts back a pull with a known sequence (replaying a journal or snapshot). Sequences
  // below next_seq() are ignored; a gap is filled with purged-like expired entries.
  void Restore(uint64_t seq, uint16_t arm, int64_t expiry_unix_s, PullState state) {
    if (entries_.empty()) {
      base_ = seq;
      cursor_ = std::max(cursor_, seq);
      if (epoch_s_ == 0) {
        epoch_s_ = expiry_unix_s;
      }
    }
    while (next_seq() < seq) {
      entries_.push_back({Offset(expiry_unix_s), 0, PullState::kExpired});
    }
    if (seq == next_seq()) {
      entries_.push_back({Offset(expiry_unix_s), arm, state});
    }
  }

  // The entry of `seq`, or nullptr when it was purged or never issued.
  Entry* Find(uint64_t seq) {
    if (seq < base_ || seq >= next_seq()) {
      return nullptr;
    }
    return &entries_[static_cast<size_t>(seq - base_)];
  }

  // Calls on_expire(seq, arm) for each pending pull whose window ended at or before `now_s`,
  // marking it expired (oldest first, stopping at the first that has not expired, or when
  // on_expire returns false, leaving that pull pending). Each seq is reported once: a cursor
  // remembers how far expiry has gone.
  template <typename F>
  void Expire(int64_t now_s, F&& on_expire) {
    while (cursor_ < next_seq()) {
      Entry& e = entries_[static_cast<size_t>(cursor_ - base_)];
      if (Unix(e.expiry_s) > now_s) {
        break;
      }
      if (e.state == PullState::kPending) {
        if (!on_expire(cursor_, e.arm)) {
          break;
        }
        e.state = PullState::kExpired;
      }
      ++cursor_;
    }
  }

  // Drops entries whose window ended more than `keep_s` seconds before `now_s`.
  void Purge(int64_t now_s, int64_t keep_s) {
    while (!entries_.empty() && base_ < cursor_ &&
           Unix(entries_.front().expiry_s) + keep_s <= now_s) {
      entries_.pop_front();
      ++base_;
    }
  }

  // Marks expiry as done up to `seq` (replay: an expiry record was seen).
  void SetCursorAtLeast(uint64_t seq) {
    if (cursor_ < seq) {
      cursor_ = seq;
    }
  }
  uint64_t cursor() const { return cursor_; }

  int64_t Unix(uint32_t offset) const { return epoch_s_ + offset; }

  // Appends the whole index (8 bytes per entry) to `out`; Deserialize reads it back.
  void Serialize(std::string& out) const {
    const uint64_t header[4] = {base_, cursor_, static_cast<uint64_t>(epoch_s_), entries_.size()};
    out.append(reinterpret_cast<const char*>(header), sizeof header);
    size_t at = out.size();
    out.resize(at + entries_.size() * 8);
    for (const Entry& e : entries_) {
      char* b = out.data() + at;
      std::memcpy(b, &e.expiry_s, 4);
      std::memcpy(b + 4, &e.arm, 2);
      b[6] = static_cast<char>(e.state);
      b[7] = 0;
      at += 8;
    }
  }
  bool Deserialize(std::string_view& in) {
    uint64_t header[4];
    if (in.size() < sizeof header) {
      return false;
    }
    std::memcpy(header, in.data(), sizeof header);
    in.remove_prefix(sizeof header);
    if (header[3] > in.size() / 8 || header[1] < header[0] || header[1] > header[0] + header[3]) {
      return false;
    }
    base_ = header[0];
    cursor_ = header[1];
    epoch_s_ = static_cast<int64_t>(header[2]);
    entries_.clear();
    for (uint64_t i = 0; i < header[3]; ++i) {
      Entry e;
      std::memcpy(&e.expiry_s, in.data(), 4);
      std::memcpy(&e.arm, in.data() + 4, 2);
      const auto state = static_cast<uint8_t>(in[6]);
      if (state > 3) {
        return false;
      }
      e.state = static_cast<PullState>(state);
      entries_.push_back(e);
      in.remove_prefix(8);
    }
    return true;
  }

 private:
  uint32_t Offset(int64_t unix_s) const {
    const int64_t d = unix_s - epoch_s_;
    return d < 0 ? 0 : static_cast<uint32_t>(d);
  }

  std::deque<Entry> entries_;
  uint64_t base_ = 1;    // sequence of entries_.front()
  uint64_t cursor_ = 1;  // every pull below it has been considered for expiry
  int64_t epoch_s_ = 0;
};

}  // namespace evo::bandit
