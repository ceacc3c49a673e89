// The ids module: 64-bit, time-ordered (k-sortable) unique IDs, Snowflake-style, plus
// coordination-free 128-bit UUIDv7 and ULID.
//
// A 64-bit ID is  0 | timestamp | worker | sequence  (most to least significant bits). The
// default layout is 41 bits of milliseconds since 2025-01-01T00:00:00Z, 10 worker bits and
// 12 sequence bits: 4,096,000 IDs per second per worker until the year 2094.
//
// Safety, in order of precedence:
//  - never a duplicate: within a process IDs from one Generator strictly increase; across
//    restarts a high-water mark (a timestamp persisted with fsync *before* any ID at or past
//    it is issued) is never issued below; two processes sharing a data dir never hold the
//    same worker id (WorkerLease).
//  - never block for long: a backward clock step up to `max_backward` is waited out; a
//    larger one is bridged by a logical clock (issuing from the last timestamp, borrowing
//    future ticks) up to `max_borrow`, beyond which Next() answers Unavailable with a retry
//    hint instead of waiting.
//
// Thread safety: a Generator may be shared by any number of threads. Free functions are
// thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/status.hpp"

namespace evo::ids {

using Id = uint64_t;

// How the 63 usable bits are split, and what a timestamp tick means.
struct Layout {
  int timestamp_bits = 41;
  int worker_bits = 10;
  int sequence_bits = 12;
  std::chrono::milliseconds tick{1};  // time unit of the timestamp field (Sonyflake: 10 ms)
  Clock::WallTime epoch =
      Clock::WallTime(std::chrono::milliseconds(1'735'689'600'000));  // 2025-01-01

  int64_t MaxWorkerId() const { return (int64_t{1} << worker_bits) - 1; }
  int64_t MaxSequence() const { return (int64_t{1} << sequence_bits) - 1; }
  int64_t MaxTimestamp() const { return (int64_t{1} << timestamp_bits) - 1; }
  // IDs one worker can issue per second: 2^sequence_bits * ticks per second.
  double CapacityPerSecond() const;
  // The first instant the timestamp field can no longer represent.
  Clock::WallTime Exhausted() const;
};
// InvalidArgument (reason INVALID_LAYOUT) naming the field unless: timestamp and sequence
// have >= 1 bit, worker >= 0 bits, the three sum to 63, tick is 1 ms..1 s, and the epoch is
// not after now (per `clock`), not before 1970, and not so old that the layout has run out.
Status Validate(const Layout& layout, const Clock& clock);

// The fields of an ID under a layout.
struct Decoded {
  Id id = 0;
  int64_t timestamp_ticks = 0;  // ticks since the layout epoch
  int64_t unix_millis = 0;      // the tick's start as Unix milliseconds
  int64_t worker_id = 0;
  int64_t sequence = 0;
};
Decoded Decode(const Layout& layout, Id id);
Id Compose(const Layout& layout, int64_t timestamp_ticks, int64_t worker_id, int64_t sequence);

// ---- Encodings -------------------------------------------------------------------------

enum class Format { kDecimal, kBase32, kHex };
// "decimal" | "base32" | "hex" (case-insensitive); InvalidArgument otherwise.
StatusOr<Format> ParseFormat(std::string_view name);
std::string_view FormatName(Format format);

// Decimal: shortest form. Base32: Crockford, 13 upper-case characters, zero-padded, so it
// sorts like the number. Hex: 16 lower-case characters, zero-padded.
std::string Encode(Id id, Format format);
// Decodes text in `format`: decimal is 1..19 ASCII digits (no sign, space or exponent); base32
// exactly 13 characters, accepting lower case and Crockford's aliases (I/L -> 1, O -> 0) but
// not U; hex exactly 16 digits of either case. InvalidArgument (reason MALFORMED_ID) for
// anything else, including values above 2^63 - 1. Error messages quote at most 32 bytes of
// the input.
StatusOr<Id> DecodeText(std::string_view text, Format format);
// Decodes text in whichever format it is in: all digits -> decimal; else 13 chars -> base32;
// else 16 chars -> hex. InvalidArgument when none fits.
StatusOr<Id> DecodeAnyText(std::string_view text);

// ---- Worker identity ----------------------------------------------------------------------

// An exclusive claim on a worker id. Releasing happens on destruction. A cluster backend
// (PostgreSQL, etcd) implements the same interface with a renewable lease.
class WorkerLease {
 public:
  virtual ~WorkerLease() = default;
  virtual int64_t worker_id() const = 0;
  // False when the lease is known to be lost (a cluster lease that expired); the generator
  // then refuses to issue IDs.
  virtual bool Valid() const = 0;
};

// Leases a worker id inside `dir` (created if missing) with an exclusive file lock per id
// (`dir/worker-<n>.lock`, flock). With `wanted` >= 0 that id is taken or the call fails with
// AlreadyExists; with -1 the lowest free id in 0..max_worker_id is taken, ResourceExhausted
// when none is free. The lock dies with the process, so `kill -9` frees it.
StatusOr<std::unique_ptr<WorkerLease>> AcquireFileLease(const std::filesystem::path& dir,
                                                        int64_t wanted, int64_t max_worker_id);

// ---- High-water mark ------------------------------------------------------------------------

// Where the generator persists its high-water mark: a timestamp (in ticks) no ID of this
// worker has reached. Implementations make Store durable before returning.
class MarkStore {
 public:
  virtual ~MarkStore() = default;
  // The stored mark, or 0 when none was ever stored.
  virtual StatusOr<int64_t> Load() = 0;
  virtual Status Store(int64_t mark_ticks) = 0;
};
// A mark file `path` written as write-temp, fsync, rename, fsync-directory.
std::unique_ptr<MarkStore> FileMarkStore(std::filesystem::path path);

// ---- Generator -----------------------------------------------------------------------------

struct Options {
  Layout layout;
  // A step back of the clock up to this is waited out (sleeping on the clock).
  std::chrono::milliseconds max_backward{5};
  // Ticks the logical clock may run ahead of the highest clock reading seen (after a larger
  // backward step, or on a frozen clock) before Next() answers Unavailable.
  std::chrono::milliseconds max_borrow{1000};
  // How far ahead of the issued timestamps the persisted high-water mark is set.
  std::chrono::milliseconds mark_lookahead{3000};
  // At start, a mark this far or less ahead of the clock is bridged by borrowing (the first
  // IDs carry timestamps slightly in the future); a larger gap (the clock was set back while
  // the process was down) makes the generator not ready until the clock passes the mark.
  std::chrono::milliseconds max_start_gap{5000};
};
Status Validate(const Options& options);

// Counters since Open; all monotonic except the mark.
struct Stats {
  uint64_t issued = 0;
  uint64_t clock_backward_events = 0;  // episodes of the clock reading behind the last ID
  uint64_t sequence_exhaustions = 0;   // a tick's sequence ran out (then: wait or borrow)
  uint64_t unavailable = 0;            // Next/NextBatch calls answered with an error
  int64_t worker_id = 0;
  int64_t mark_unix_millis = 0;  // current high-water mark
};

class Generator {
 public:
  // Loads the mark from `marks` and, when the clock is within `max_start_gap` of it, persists
  // a new one. `clock` must outlive the generator; the generator owns the lease and mark
  // store. InvalidArgument for bad options or a worker id that does not fit; DataLoss for a
  // corrupt mark; the store's error when the mark cannot be persisted. A clock further behind
  // the mark is not an error: the generator opens not ready (see Ready) and logs a warning.
  static StatusOr<std::unique_ptr<Generator>> Open(const Options& options, const Clock& clock,
                                                   std::unique_ptr<WorkerLease> lease,
                                                   std::unique_ptr<MarkStore> marks);
  // Persists the exact high-water mark (just past the last ID), so that a clean restart
  // issues at the clock's time rather than `mark_lookahead` ahead of it. REQUIRES: no call
  // in flight.
  virtual ~Generator() = default;

  // The next ID. Unavailable (payload kPayloadRetryAfter) while the clock is too far behind,
  // the lease is lost or the mark cannot be persisted; never a duplicate. May sleep on the
  // clock: up to `max_backward` after a backward step, and to the next tick when the
  // sequence of the current one is used up (at most one tick).
  virtual StatusOr<Id> Next() = 0;
  // `count` consecutive IDs (REQUIRES: 1 <= count), increasing, taken under one lock and one
  // clock read per tick. All or nothing.
  virtual StatusOr<std::vector<Id>> NextBatch(size_t count) = 0;
  // OK when Next() would issue now; else why not (Unavailable with retry hint).
  virtual Status Ready() = 0;

  virtual const Layout& layout() const = 0;
  // The options the generator was opened with (the HTTP adapter derives from them which
  // timestamps this generator could possibly have issued).
  virtual const Options& options() const = 0;
  virtual int64_t worker_id() const = 0;
  virtual Stats stats() const = 0;
};

// ---- 128-bit identifiers ----------------------------------------------------------------------

using Bytes16 = std::array<uint8_t, 16>;

// UUIDv7 (RFC 9562): 48-bit Unix ms, version 7, 74 random bits; monotonic within the process
// (same millisecond -> random increment of the random part, carrying into the timestamp).
class Uuid7Generator {
 public:
  // `clock` must outlive the generator; `seed` 0 seeds from the OS.
  explicit Uuid7Generator(const Clock& clock, uint64_t seed = 0);
  ~Uuid7Generator();
  Bytes16 Next();

 private:
  struct State;
  std::unique_ptr<State> state_;
};
// 8-4-4-4-12 lower-case hex.
std::string FormatUuid(const Bytes16& uuid);

// ULID: 48-bit Unix ms + 80 random bits, 26 Crockford base32 characters; monotonic within the
// process (same or earlier millisecond -> random part + 1, carrying into the timestamp on the
// practically impossible overflow instead of failing).
class UlidGenerator {
 public:
  explicit UlidGenerator(const Clock& clock, uint64_t seed = 0);
  ~UlidGenerator();
  Bytes16 Next();

 private:
  struct State;
  std::unique_ptr<State> state_;
};
std::string FormatUlid(const Bytes16& ulid);

}  // namespace evo::ids
