// JSON Schema validation of nlohmann::json documents.
//
// Used to check published event payloads against their event type's schema (an invalid
// payload is answered 422 with the failing JSON pointers) and request bodies.
//
// Dialect: draft 2020-12 semantics, or draft-07 when the root says so with
// "$schema": "http://json-schema.org/draft-07/schema#". Any other "$schema" is rejected.
// Supported keywords:
//   - boolean schemas; type (a name or an array of names; "integer" is any number with a
//     zero fractional part, so 1.0 is an integer); enum; const (numbers compare by value:
//     1 == 1.0; objects ignore member order)
//   - multipleOf (exact on the decimals as written: 0.0075 is a multiple of 0.0001);
//     maximum, exclusiveMaximum, minimum, exclusiveMinimum (exact between integers; with a
//     non-integer on either side both compare as doubles, and numbers beyond 64-bit
//     integers are doubles already when nlohmann parses them)
//   - maxLength, minLength (Unicode code points); pattern (see "Regular expressions")
//   - maxItems, minItems, uniqueItems, prefixItems, items, contains, minContains,
//     maxContains; draft-07: items as an array and additionalItems
//   - maxProperties, minProperties, required, properties, patternProperties,
//     additionalProperties, propertyNames, dependentRequired, dependentSchemas; draft-07:
//     dependencies
//   - allOf, anyOf, oneOf, not, if/then/else
//   - $ref to "#" or to a JSON pointer in the same document ("#/$defs/x",
//     "#/definitions/x", "#/properties/a", also spelled "<the root's $id>#/..."), cycles
//     included; in 2020-12 a $ref's sibling keywords apply too, in draft-07 they are
//     ignored, as each draft says
//   - annotations that never change the verdict: title, description, default, examples,
//     $comment, deprecated, readOnly, writeOnly, format (NOT asserted: "format": "email"
//     accepts any string), contentEncoding, contentMediaType, contentSchema, $anchor,
//     $dynamicAnchor, $vocabulary, $id and $schema at the root, the OpenAPI 3.1 keywords
//     example, discriminator, xml and externalDocs, and any "x-" keyword.
// Compile rejects everything else rather than ignoring it, so that a typo ("maxLenght") or
// an unsupported keyword never silently accepts a payload: remote and anchor ("#foo")
// $refs, $id below the root, $dynamicRef, $recursiveRef, unevaluatedProperties,
// unevaluatedItems, and the keywords of the other dialect (additionalItems, dependencies
// and array-valued items in 2020-12; prefixItems, dependentRequired, dependentSchemas,
// minContains and maxContains in draft-07).
//
// Regular expressions ("pattern", "patternProperties") are ECMA-262 with the "u" flag
// semantics JSON Schema asks for, matched by a built-in linear-time automaton (not
// std::regex, which backtracks: it overflows the stack on a ~20,000-character string
// and takes exponential time on patterns like "^(a+)+$"). Matching works on code points:
// "." and "[^a]" match one code point, including outside the BMP. Supported: | () (?:)
// (?<name>) * + ? {n} {n,} {n,m} (and their lazy forms) ^ $ \b \B . classes with
// ranges, \d \D \w \W \s \S, \t \n \v \f \r \0 \cX \xHH \uHHHH \u{H...} and escaped
// punctuation; as ECMA-262 Annex B, a "{" that starts no quantifier, "}" and "]" are
// literals, and so is a "-" next to a class escape inside [...]. \d and \w are
// ASCII-only and \s is Unicode white space, as in ECMA-262. Rejected by Compile (gaps):
// lookahead and lookbehind, backreferences, \p{...} property escapes, legacy octal
// escapes, and escaped letters that mean nothing ("\a").
//
// Limits against hostile schemas and payloads (each -> InvalidArgument from Compile, or
// an error from Validate):
//   - a schema of at most kMaxSchemaBytes (approximate serialized size) and nested at most
//     kMaxSchemaDepth JSON levels;
//   - a pattern of at most kMaxPatternBytes, with groups nested at most 32 deep,
//     compiling to at most kMaxPatternProgram automaton instructions ("{n,m}" counts are
//     at most 1000), and kMaxSchemaPatternProgram for all patterns of a schema together;
//   - evaluation nested at most kMaxEvaluationDepth subschemas deep (a $ref cycle such as
//     {"$ref": "#"} ends there) and taking at most kBaseEvaluationSteps +
//     kEvaluationStepsPerByte x (the instance's approximate serialized size) steps
//     (subschema visits, regex automaton steps, uniqueItems comparisons; a step is tens of
//     nanoseconds, so a schema that explodes combinatorially costs well under 0.1 s on a
//     small instance); reaching either ends validation with an error and the instance is
//     rejected. Legitimate schemas take a few steps per instance byte (a 1 MiB array of
//     20,000 objects with patterns and uniqueItems validates in ~45 ms).
//
// Thread safety: a JsonSchema is immutable after Compile; Validate and Accepts may be
// called concurrently from any number of threads. Copies share the compiled form.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.hpp"

namespace evo::http {

// One reason an instance fails its schema.
struct SchemaError {
  // JSON pointer into the instance, in the "#/a/0" form http::InvalidField uses ("#" for
  // the whole instance). Member names are escaped as RFC 6901 says ("~0", "~1"), nothing
  // else. For a missing required member it names the member ("#/user/name").
  std::string pointer;
  // A sentence fragment for people, e.g. "must be of type integer, got string".
  std::string message;

  friend bool operator==(const SchemaError&, const SchemaError&) = default;
};

class JsonSchema {
 public:
  static constexpr size_t kMaxSchemaBytes = size_t{64} * 1024;
  static constexpr size_t kMaxSchemaDepth = 64;
  static constexpr size_t kMaxPatternBytes = 1024;
  static constexpr size_t kMaxPatternProgram = 10'000;
  static constexpr size_t kMaxSchemaPatternProgram = 100'000;
  static constexpr size_t kMaxEvaluationDepth = 64;
  static constexpr size_t kBaseEvaluationSteps = 1'000'000;
  static constexpr size_t kEvaluationStepsPerByte = 16;

  // Compiles `schema` (a JSON Schema document: an object or a boolean). Returns
  // InvalidArgument for a schema that is malformed ("minimum" that is not a number, an
  // invalid pattern, a $ref that points nowhere), uses something unsupported (see the top
  // of this file; the message then contains "unsupported", or "unknown keyword" for a
  // keyword this file does not list) or exceeds a limit. The message
  // starts with the JSON pointer of the offending keyword in the schema
  // ("#/properties/a/pattern: ..."), which is also attached as the kPayloadPointer
  // payload; a caller that took the schema from a larger document should prefix it.
  static StatusOr<JsonSchema> Compile(const nlohmann::json& schema);

  // Returns why `instance` does not conform, in evaluation order, at most `max_errors` of
  // them (0 counts as 1); empty when it conforms. anyOf, oneOf, not, contains and
  // propertyNames report one error at the instance (or member) they judged rather than
  // the reasons of each branch; allOf, $ref, then/else and the rest report the failures
  // inside them. When validation hits a limit (see above) the last error says so and the
  // instance counts as invalid.
  std::vector<SchemaError> Validate(const nlohmann::json& instance, size_t max_errors = 10) const;

  // True when `instance` conforms; cheaper than Validate (stops at the first failure).
  bool Accepts(const nlohmann::json& instance) const;

 private:
  struct Impl;
  explicit JsonSchema(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace evo::http
