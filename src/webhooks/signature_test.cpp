// Tests of Standard Webhooks signatures: the reference libraries' test vectors, round trips,
// rotation, tampering, the timestamp tolerance, malformed headers, v1/v1a separation and bad
// keys.
#include "webhooks/signature.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

namespace evo::webhooks {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// The symmetric test vector of the reference libraries (standard-webhooks/standard-webhooks:
// libraries/go/webhook_test.go TestWebhookSign and libraries/python/tests/test_webhooks.py
// test_sign_function).
constexpr std::string_view kSpecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr std::string_view kSpecMsgId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kSpecTimestamp = 1614265330;
constexpr std::string_view kSpecBody = R"({"test": 2432232314})";
constexpr std::string_view kSpecV1Signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// The asymmetric test vector of the reference Go library (libraries/go/
// webhook_asymmetric_test.go TestAsymmetricWebhookSign): the seed is the 32 ASCII bytes
// "TESTSIGNINGKEYDONOTUSETHISFORANY", over the same message as above.
constexpr std::string_view kSpecSigningKey = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
constexpr std::string_view kSpecV1aSignature =
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";

constexpr int64_t kNow = 1'700'000'000;
constexpr std::string_view kMsgId = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
constexpr std::string_view kBody =
    R"({"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1"}})";

std::string Raw(std::string_view secret) {
  StatusOr<std::string> raw = DecodeSecret(secret);
  EXPECT_TRUE(raw.ok()) << raw.status();
  return raw.value_or("");
}

std::string Header(const std::vector<std::string>& keys, int64_t ts = kNow,
                   std::string_view body = kBody, std::string_view msg_id = kMsgId) {
  StatusOr<std::string> header = SignatureHeader(keys, msg_id, ts, body);
  EXPECT_TRUE(header.ok()) << header.status();
  return header.value_or("");
}

Status VerifyAtNow(const std::vector<std::string>& keys, std::string_view signature_header,
                   std::string_view body = kBody, std::string_view msg_id = kMsgId,
                   std::string_view timestamp_header = "1700000000") {
  return Verify(keys, msg_id, timestamp_header, signature_header, body, kNow);
}

// A bare base64 secret of `n` bytes (all 'k').
std::string SecretOfSize(size_t n) {
  // 3 bytes "kkk" encode to "a2tr"; the tail needs padding.
  std::string b64;
  for (size_t i = 0; i + 3 <= n; i += 3) {
    b64 += "a2tr";
  }
  if (n % 3 == 1) {
    b64 += "aw==";
  } else if (n % 3 == 2) {
    b64 += "a2s=";
  }
  return b64;
}

// ---- Test vectors ----

TEST(SignV1, ReproducesTheReferenceLibrariesTestVector) {
  EXPECT_EQ(SignV1(Raw(kSpecSecret), kSpecMsgId, kSpecTimestamp, kSpecBody), kSpecV1Signature);
}

TEST(SignV1, GivesTheSameSignatureForASecretWithoutItsPrefix) {
  const std::string bare(kSpecSecret.substr(kSecretPrefix.size()));
  EXPECT_EQ(Raw(bare), Raw(kSpecSecret));
  EXPECT_EQ(SignV1(Raw(bare), kSpecMsgId, kSpecTimestamp, kSpecBody), kSpecV1Signature);
}

TEST(Verify, AcceptsTheReferenceTestVector) {
  const Status s = Verify({std::string(kSpecSecret)}, kSpecMsgId, "1614265330", kSpecV1Signature,
                          kSpecBody, kSpecTimestamp);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(SignV1a, ReproducesTheReferenceGoLibraryTestVector) {
  for (const std::string& key : {std::string(kSpecSigningKey),
                                 std::string(kSigningKeyPrefix) + std::string(kSpecSigningKey)}) {
    StatusOr<std::string> seed = DecodeSigningKey(key);
    ASSERT_TRUE(seed.ok()) << seed.status();
    EXPECT_EQ(*seed, "TESTSIGNINGKEYDONOTUSETHISFORANY");
    StatusOr<std::string> sig = SignV1a(*seed, kSpecMsgId, kSpecTimestamp, kSpecBody);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_EQ(*sig, kSpecV1aSignature);
  }
}

TEST(Verify, AcceptsTheReferenceV1aVectorWithItsPublicKey) {
  StatusOr<std::string> public_key = PublicKeyFor(kSpecSigningKey);
  ASSERT_TRUE(public_key.ok()) << public_key.status();
  EXPECT_THAT(*public_key, StartsWith(kPublicKeyPrefix));
  const Status s =
      Verify({*public_key}, kSpecMsgId, "1614265330", kSpecV1aSignature, kSpecBody, kSpecTimestamp);
  EXPECT_TRUE(s.ok()) << s;
}

// ---- Key generation and round trips ----

TEST(GenerateSecret, GivesDistinctPrefixedThirtyTwoByteSecrets) {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    const std::string secret = GenerateSecret();
    EXPECT_THAT(secret, StartsWith(kSecretPrefix));
    EXPECT_EQ(Raw(secret).size(), 32u);
    seen.insert(secret);
  }
  EXPECT_EQ(seen.size(), 20u);
}

TEST(GenerateEd25519KeyPair, GivesDistinctPairsWhosePublicKeyMatchesTheSigningKey) {
  const Ed25519KeyPair a = GenerateEd25519KeyPair();
  const Ed25519KeyPair b = GenerateEd25519KeyPair();
  EXPECT_THAT(a.signing_key, StartsWith(kSigningKeyPrefix));
  EXPECT_THAT(a.public_key, StartsWith(kPublicKeyPrefix));
  EXPECT_NE(a.signing_key, b.signing_key);
  EXPECT_NE(a.public_key, b.public_key);
  EXPECT_EQ(PublicKeyFor(a.signing_key).value_or(""), a.public_key);
  EXPECT_EQ(DecodeSigningKey(a.signing_key).value_or("").size(), 32u);
  EXPECT_EQ(DecodePublicKey(a.public_key).value_or("").size(), 32u);
}

TEST(Verify, AcceptsWhatSignatureHeaderProducedWithAGeneratedSecret) {
  const std::string secret = GenerateSecret();
  const std::string header = Header({secret});
  EXPECT_EQ(header, SignV1(Raw(secret), kMsgId, kNow, kBody));
  const Status s = VerifyAtNow({secret}, header);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(Verify, AcceptsWhatSignatureHeaderProducedWithAGeneratedKeyPair) {
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  const std::string header = Header({pair.signing_key});
  EXPECT_THAT(header, StartsWith("v1a,"));
  const Status with_public = VerifyAtNow({pair.public_key}, header);
  EXPECT_TRUE(with_public.ok()) << with_public;
  const Status with_signing = VerifyAtNow({pair.signing_key}, header);
  EXPECT_TRUE(with_signing.ok()) << with_signing;
}

TEST(Verify, AcceptsAnEmptyBody) {
  const std::string secret = GenerateSecret();
  const Status s = VerifyAtNow({secret}, Header({secret}, kNow, ""), "");
  EXPECT_TRUE(s.ok()) << s;
}

// ---- Rotation ----

TEST(SignatureHeader, JoinsOneSignaturePerKeyWithASingleSpaceInOrder) {
  const std::string old_secret = GenerateSecret();
  const std::string new_secret = GenerateSecret();
  EXPECT_EQ(Header({old_secret, new_secret}), SignV1(Raw(old_secret), kMsgId, kNow, kBody) + " " +
                                                  SignV1(Raw(new_secret), kMsgId, kNow, kBody));
}

TEST(Verify, AcceptsARotationHeaderWithEitherTheOldOrTheNewSecret) {
  const std::string old_secret = GenerateSecret();
  const std::string new_secret = GenerateSecret();
  const std::string header = Header({old_secret, new_secret});
  EXPECT_TRUE(VerifyAtNow({old_secret}, header).ok());
  EXPECT_TRUE(VerifyAtNow({new_secret}, header).ok());
  EXPECT_TRUE(VerifyAtNow({old_secret, new_secret}, header).ok());
  // A receiver that trusts either key accepts a message signed with only one of them.
  EXPECT_TRUE(VerifyAtNow({old_secret, new_secret}, Header({new_secret})).ok());
  EXPECT_TRUE(VerifyAtNow({old_secret, new_secret}, Header({old_secret})).ok());
  // A receiver that already dropped the old key does not accept it alone.
  EXPECT_EQ(VerifyAtNow({new_secret}, Header({old_secret})).code(), StatusCode::kUnauthenticated);
}

TEST(Verify, AcceptsARotationFromASecretToAKeyPair) {
  const std::string secret = GenerateSecret();
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  const std::string header = Header({secret, pair.signing_key});
  EXPECT_THAT(header, HasSubstr(" v1a,"));
  EXPECT_TRUE(VerifyAtNow({secret}, header).ok());
  EXPECT_TRUE(VerifyAtNow({pair.public_key}, header).ok());
}

TEST(Verify, SkipsUnknownVersionsAndWrongSignaturesInAMultiSignatureHeader) {
  // The multi-signature case of the reference libraries' tests.
  const std::string secret = GenerateSecret();
  const std::string header =
      "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
      "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " +
      Header({secret}) + " v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
  const Status s = VerifyAtNow({secret}, header);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(Verify, ToleratesRepeatedAndTrailingSpacesAndEntriesWithoutAComma) {
  const std::string secret = GenerateSecret();
  const Status s = VerifyAtNow({secret}, "junk  " + Header({secret}) + "  ");
  EXPECT_TRUE(s.ok()) << s;
}

// ---- Tampering ----

TEST(Verify, RejectsATamperedBody) {
  const std::string secret = GenerateSecret();
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  for (const auto& [signer, verifier] :
       {std::pair{secret, secret}, std::pair{pair.signing_key, pair.public_key}}) {
    const std::string header = Header({signer});
    const Status s = VerifyAtNow({verifier}, header, R"({"type":"contact.created"})");
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(s.message()), HasSubstr("no matching signature"));
    // One byte more is enough.
    EXPECT_EQ(VerifyAtNow({verifier}, header, std::string(kBody) + " ").code(),
              StatusCode::kUnauthenticated);
  }
}

TEST(Verify, RejectsATamperedMessageId) {
  const std::string secret = GenerateSecret();
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  for (const auto& [signer, verifier] :
       {std::pair{secret, secret}, std::pair{pair.signing_key, pair.public_key}}) {
    const Status s = VerifyAtNow({verifier}, Header({signer}), kBody, "msg_other");
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(s.message()), HasSubstr("no matching signature"));
  }
}

TEST(Verify, RejectsATamperedTimestampInsideTheTolerance) {
  const std::string secret = GenerateSecret();
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  for (const auto& [signer, verifier] :
       {std::pair{secret, secret}, std::pair{pair.signing_key, pair.public_key}}) {
    const Status s = VerifyAtNow({verifier}, Header({signer}), kBody, kMsgId, "1700000001");
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(s.message()), HasSubstr("no matching signature"));
  }
}

TEST(Verify, RejectsASignatureWithOneBitFlipped) {
  const std::string secret = GenerateSecret();
  std::string header = Header({secret});
  header[5] = header[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(VerifyAtNow({secret}, header).code(), StatusCode::kUnauthenticated);
  // The wrong signature of the Python reference tests: the vector with its last byte changed.
  const Status s =
      Verify({std::string(kSpecSecret)}, kSpecMsgId, "1614265330",
             "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=", kSpecBody, kSpecTimestamp);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
}

TEST(Verify, RejectsASignatureMadeWithAnotherKey) {
  EXPECT_EQ(VerifyAtNow({GenerateSecret()}, Header({GenerateSecret()})).code(),
            StatusCode::kUnauthenticated);
  const Ed25519KeyPair a = GenerateEd25519KeyPair();
  const Ed25519KeyPair b = GenerateEd25519KeyPair();
  EXPECT_EQ(VerifyAtNow({b.public_key}, Header({a.signing_key})).code(),
            StatusCode::kUnauthenticated);
}

// ---- Timestamp tolerance ----

TEST(Verify, AcceptsTimestampsUpToTheToleranceEitherWay) {
  const std::string secret = GenerateSecret();
  for (const int64_t ts : {kNow - 300, kNow - 1, kNow, kNow + 1, kNow + 300}) {
    const Status s =
        Verify({secret}, kMsgId, std::to_string(ts), Header({secret}, ts), kBody, kNow);
    EXPECT_TRUE(s.ok()) << ts << ": " << s;
  }
}

TEST(Verify, RejectsATimestampOlderThanTheTolerance) {
  const std::string secret = GenerateSecret();
  const int64_t ts = kNow - 301;
  const Status s = Verify({secret}, kMsgId, std::to_string(ts), Header({secret}, ts), kBody, kNow);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(s.message()), HasSubstr("too old"));
}

TEST(Verify, RejectsATimestampNewerThanTheTolerance) {
  const std::string secret = GenerateSecret();
  const int64_t ts = kNow + 301;
  const Status s = Verify({secret}, kMsgId, std::to_string(ts), Header({secret}, ts), kBody, kNow);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(s.message()), HasSubstr("too new"));
}

TEST(Verify, HonoursACustomTolerance) {
  const std::string secret = GenerateSecret();
  const int64_t ts = kNow - 10;
  const std::string header = Header({secret}, ts);
  const std::string ts_text = std::to_string(ts);
  EXPECT_TRUE(Verify({secret}, kMsgId, ts_text, header, kBody, kNow, 10).ok());
  EXPECT_EQ(Verify({secret}, kMsgId, ts_text, header, kBody, kNow, 9).code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(Verify({secret}, kMsgId, ts_text, header, kBody, kNow, 0).code(),
            StatusCode::kUnauthenticated);
  EXPECT_TRUE(
      Verify({secret}, kMsgId, std::to_string(kNow), Header({secret}, kNow), kBody, kNow, 0).ok());
}

TEST(Verify, ChecksTheTimestampBeforeTheSignature) {
  // A stale replay is reported as stale even when its signature is garbage.
  const Status s = Verify({GenerateSecret()}, kMsgId, "1000", "v1,AAAA", kBody, kNow);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(s.message()), HasSubstr("too old"));
}

TEST(Verify, HandlesExtremeClocksWithoutOverflow) {
  const std::string secret = GenerateSecret();
  const std::string header = Header({secret}, 0);
  const Status far_future =
      Verify({secret}, kMsgId, "0", header, kBody, std::numeric_limits<int64_t>::max());
  EXPECT_THAT(std::string(far_future.message()), HasSubstr("too old"));
  const Status far_past = Verify({secret}, kMsgId, "9223372036854775807", header, kBody,
                                 std::numeric_limits<int64_t>::min());
  EXPECT_THAT(std::string(far_past.message()), HasSubstr("too new"));
  EXPECT_TRUE(Verify({secret}, kMsgId, "0", header, kBody, 0).ok());
}

// ---- Malformed headers ----

TEST(Verify, RejectsMalformedTimestamps) {
  const std::string secret = GenerateSecret();
  const std::string header = Header({secret});
  for (const std::string_view ts :
       {"", "abc", "-1", "+1700000000", " 1700000000", "1700000000 ", "01700000000", "1700000000.0",
        "1.7e9", "99999999999999999999"}) {
    const Status s = Verify({secret}, kMsgId, ts, header, kBody, kNow);
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << "'" << ts << "'";
    EXPECT_THAT(std::string(s.message()), HasSubstr("malformed webhook-timestamp"))
        << "'" << ts << "'";
  }
}

TEST(Verify, RejectsSignatureHeadersWithoutAnyVersionedEntry) {
  const std::string secret = GenerateSecret();
  for (const std::string_view header :
       {"", " ", "   ", "v1", "v1,", ",abc", "v1, v1a,", "garbage"}) {
    const Status s = VerifyAtNow({secret}, header);
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << "'" << header << "'";
    EXPECT_THAT(std::string(s.message()), HasSubstr("malformed webhook-signature"))
        << "'" << header << "'";
  }
}

TEST(Verify, RejectsEntriesThatAreNotBase64OrHaveTheWrongLength) {
  const std::string secret = GenerateSecret();
  const std::string good = Header({secret});
  const std::string b64 = good.substr(3);
  const std::vector<std::string> headers = {"v1,!!!!",
                                            "v1," + b64.substr(0, b64.size() - 1),
                                            "v1," + b64 + "AAAA",
                                            "v1, " + b64,
                                            "v1," + b64 + "\t",
                                            "v1,AAAA",
                                            good + "," + b64};
  for (const std::string& header : headers) {
    const Status s = VerifyAtNow({secret}, header);
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << "'" << header << "'";
  }
}

TEST(Verify, RejectsAnEmptyMessageId) {
  const std::string secret = GenerateSecret();
  const Status s = VerifyAtNow({secret}, Header({secret}, kNow, kBody, ""), kBody, "");
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(s.message()), HasSubstr("malformed webhook-id"));
}

// ---- v1 and v1a stay apart ----

TEST(Verify, DoesNotAcceptAV1aSignatureWithASecret) {
  const std::string secret = GenerateSecret();
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  const std::string v1a = Header({pair.signing_key});
  const Status s = VerifyAtNow({secret}, v1a);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(s.message()), HasSubstr("0 v1 and 1 v1a"));
  // Relabelled as v1 it is still no HMAC of this secret.
  EXPECT_EQ(VerifyAtNow({secret}, "v1," + v1a.substr(4)).code(), StatusCode::kUnauthenticated);
}

TEST(Verify, DoesNotAcceptAV1SignatureWithAPublicKey) {
  const std::string secret = GenerateSecret();
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  const std::string v1 = Header({secret});
  const Status s = VerifyAtNow({pair.public_key}, v1);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(s.message()), HasSubstr("1 v1 and 0 v1a"));
  EXPECT_EQ(VerifyAtNow({pair.public_key}, "v1a," + v1.substr(3)).code(),
            StatusCode::kUnauthenticated);
}

TEST(Verify, DoesNotReadAPublicKeyWithoutItsPrefixAsAPublicKey) {
  // Bare base64 is a v1 secret, as in the reference libraries; a bare 32-byte public key is
  // thus a (useless) HMAC key and accepts no v1a signature.
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  const std::string bare = pair.public_key.substr(kPublicKeyPrefix.size());
  EXPECT_EQ(VerifyAtNow({bare}, Header({pair.signing_key})).code(), StatusCode::kUnauthenticated);
}

// ---- Bad keys ----

TEST(DecodeSecret, AcceptsTheBoundsOfTheSpecAndRejectsOutsideThem) {
  EXPECT_EQ(Raw(SecretOfSize(24)).size(), 24u);
  EXPECT_EQ(Raw(SecretOfSize(64)).size(), 64u);
  EXPECT_EQ(Raw("whsec_" + SecretOfSize(25)).size(), 25u);
  for (const size_t n : {0u, 1u, 16u, 23u, 65u, 128u}) {
    const StatusOr<std::string> raw = DecodeSecret("whsec_" + SecretOfSize(n));
    EXPECT_EQ(raw.status().code(), StatusCode::kInvalidArgument) << n;
  }
  EXPECT_THAT(std::string(DecodeSecret(SecretOfSize(16)).status().message()),
              HasSubstr("16 bytes"));
}

TEST(DecodeSecret, RejectsAnythingButPaddedStandardBase64) {
  const std::string b64 = SecretOfSize(25);  // ends in "="
  ASSERT_EQ(b64.back(), '=');
  for (const std::string& secret :
       {std::string("whsec_not base64 at all!"), "whsec_" + b64.substr(0, b64.size() - 1),
        "whsec_ " + b64, "whsec_" + b64 + "\n", "whsec_" + b64 + "=",
        "whsec_" + std::string(32, '-'), "whsec_" + std::string(32, '_'),
        "whsec_" + b64.substr(0, 4) + "=" + b64.substr(5), "WHSEC_" + b64}) {
    EXPECT_EQ(DecodeSecret(secret).status().code(), StatusCode::kInvalidArgument) << secret;
  }
}

TEST(DecodeSecret, RejectsEd25519KeysNamingTheirPrefix) {
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  for (const std::string& key : {pair.signing_key, pair.public_key}) {
    const StatusOr<std::string> raw = DecodeSecret(key);
    EXPECT_EQ(raw.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(raw.status().message()), HasSubstr("prefix"));
  }
}

TEST(DecodeEd25519Keys, RejectWrongLengthsAndPrefixes) {
  const std::string secret = GenerateSecret();
  const Ed25519KeyPair pair = GenerateEd25519KeyPair();
  EXPECT_EQ(DecodeSigningKey(secret).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeSigningKey(pair.public_key).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeSigningKey("whsk_" + SecretOfSize(31)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeSigningKey("whsk_" + SecretOfSize(64)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeSigningKey("whsk_%%%%").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodePublicKey(secret).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodePublicKey(pair.signing_key).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodePublicKey("whpk_" + SecretOfSize(33)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PublicKeyFor(pair.public_key).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(DecodePublicKey(pair.public_key.substr(kPublicKeyPrefix.size())).ok());
}

TEST(SignV1a, RejectsASeedThatIsNot32Bytes) {
  EXPECT_EQ(SignV1a("short", kMsgId, kNow, kBody).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SignV1a(std::string(64, 'k'), kMsgId, kNow, kBody).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(SignatureHeader, RejectsNoKeysAndBadKeysWithoutEchoingThem) {
  EXPECT_EQ(SignatureHeader({}, kMsgId, kNow, kBody).status().code(), StatusCode::kInvalidArgument);
  const std::string bad = "whsec_c2hvcnQ=";  // "short", 5 bytes
  const StatusOr<std::string> header =
      SignatureHeader({GenerateSecret(), bad}, kMsgId, kNow, kBody);
  EXPECT_EQ(header.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(header.status().message()), HasSubstr("keys[1]"));
  EXPECT_THAT(std::string(header.status().message()), Not(HasSubstr("c2hvcnQ")));
  const StatusOr<std::string> public_only =
      SignatureHeader({GenerateEd25519KeyPair().public_key}, kMsgId, kNow, kBody);
  EXPECT_EQ(public_only.status().code(), StatusCode::kInvalidArgument);
}

TEST(Verify, ReportsTheReceiversBadConfigurationAsInvalidArgument) {
  const std::string secret = GenerateSecret();
  const std::string header = Header({secret});
  EXPECT_EQ(VerifyAtNow({}, header).code(), StatusCode::kInvalidArgument);
  const std::string bad = "whsec_c2hvcnQ=";
  const Status s = VerifyAtNow({secret, bad}, header);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("keys[1]"));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("c2hvcnQ")));
  EXPECT_EQ(VerifyAtNow({secret, "whpk_AAAA"}, header).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Verify({secret}, kMsgId, "1700000000", header, kBody, kNow, -1).code(),
            StatusCode::kInvalidArgument);
}

TEST(Verify, NeverPutsTheExpectedSignatureInItsMessage) {
  const std::string secret = GenerateSecret();
  const std::string expected = Header({secret}, kNow, kBody).substr(3);
  const Status s = VerifyAtNow({secret}, Header({secret}, kNow, "other body"));
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr(expected)));
}

}  // namespace
}  // namespace evo::webhooks
