#include "http/json_schema.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace evo::http {

void PrintTo(const SchemaError& e, std::ostream* os) {
  *os << "{" << e.pointer << ", \"" << e.message << "\"}";
}

namespace {

using nlohmann::json;
using Errors = std::vector<SchemaError>;

// Compiles `schema`, failing the test (and returning the schema `true`) when it does not.
JsonSchema Schema(const json& schema) {
  auto compiled = JsonSchema::Compile(schema);
  if (!compiled.ok()) {
    ADD_FAILURE() << "Compile(" << schema.dump() << "): " << compiled.status();
    return *JsonSchema::Compile(true);
  }
  return *std::move(compiled);
}

// The Compile error for `schema` (OK when it compiles).
Status CompileError(const json& schema) { return JsonSchema::Compile(schema).status(); }

bool Accepts(const json& schema, const json& instance) { return Schema(schema).Accepts(instance); }

// --- Keywords --------------------------------------------------------------------------

TEST(JsonSchema, BooleanSchemasAcceptOrRejectEverything) {
  EXPECT_TRUE(Accepts(true, json::object()));
  EXPECT_TRUE(Accepts(true, nullptr));
  EXPECT_FALSE(Accepts(false, 1));
  EXPECT_EQ(Schema(false).Validate(1), (Errors{{"#", "is not allowed (the schema is false)"}}));
  EXPECT_TRUE(Accepts(json::object(), "anything"));
}

TEST(JsonSchema, TypeAcceptsIntegersWithZeroFraction) {
  const json integer = {{"type", "integer"}};
  EXPECT_TRUE(Accepts(integer, 1));
  EXPECT_TRUE(Accepts(integer, -5));
  EXPECT_TRUE(Accepts(integer, 1.0));
  EXPECT_TRUE(Accepts(integer, 18446744073709551615ULL));
  EXPECT_FALSE(Accepts(integer, 1.5));
  EXPECT_FALSE(Accepts(integer, "1"));
  EXPECT_TRUE(Accepts({{"type", "number"}}, 1));
  EXPECT_TRUE(Accepts({{"type", "number"}}, 1.5));
  EXPECT_FALSE(Accepts({{"type", "number"}}, true));
  EXPECT_TRUE(Accepts({{"type", "null"}}, nullptr));
  EXPECT_TRUE(Accepts({{"type", "boolean"}}, false));
  EXPECT_TRUE(Accepts({{"type", "object"}}, json::object()));
  EXPECT_FALSE(Accepts({{"type", "object"}}, json::array()));
  EXPECT_TRUE(Accepts({{"type", "array"}}, json::array()));
  EXPECT_TRUE(Accepts({{"type", "string"}}, ""));
}

TEST(JsonSchema, TypeArrayAcceptsAnyListedTypeAndNamesThemAll) {
  const JsonSchema s = Schema({{"type", {"string", "null"}}});
  EXPECT_TRUE(s.Accepts("x"));
  EXPECT_TRUE(s.Accepts(nullptr));
  EXPECT_EQ(s.Validate(1.5), (Errors{{"#", "must be of type null or string, got number"}}));
  EXPECT_EQ(Schema({{"type", "integer"}}).Validate("1"),
            (Errors{{"#", "must be of type integer, got string"}}));
}

TEST(JsonSchema, EnumComparesJsonValuesNotRepresentations) {
  const JsonSchema s = Schema({{"enum", {1, "a", {{"x", {1}}}, nullptr}}});
  EXPECT_TRUE(s.Accepts(1.0));
  EXPECT_TRUE(s.Accepts(json{{"x", {1.0}}}));
  EXPECT_TRUE(s.Accepts(nullptr));
  EXPECT_FALSE(s.Accepts(true));  // true is not 1
  EXPECT_FALSE(s.Accepts("b"));
  EXPECT_FALSE(s.Accepts(json{{"x", {1}}, {"y", 2}}));
  EXPECT_EQ(Schema({{"enum", {"a", "b"}}}).Validate("c"),
            (Errors{{"#", R"(must be one of ["a","b"])"}}));
}

TEST(JsonSchema, ConstIgnoresMemberOrderAndNumberSpelling) {
  const JsonSchema s = Schema(json::parse(R"({"const": {"a": 1, "b": [true, null]}})"));
  EXPECT_TRUE(s.Accepts(json::parse(R"({"b": [true, null], "a": 1.0})")));
  EXPECT_FALSE(s.Accepts(json::parse(R"({"b": [null, true], "a": 1})")));
  EXPECT_FALSE(Accepts({{"const", false}}, 0));
  EXPECT_FALSE(Accepts({{"const", 0}}, false));
  EXPECT_EQ(Schema({{"const", 42}}).Validate(41), (Errors{{"#", "must equal 42"}}));
}

TEST(JsonSchema, MultipleOfIsExactForDecimalNumbers) {
  EXPECT_TRUE(Accepts({{"multipleOf", 0.0001}}, 0.0075));
  EXPECT_FALSE(Accepts({{"multipleOf", 0.0001}}, 0.00751));
  EXPECT_TRUE(Accepts({{"multipleOf", 0.01}}, 0.07));  // 0.07 / 0.01 is 7.000000000000001
  EXPECT_TRUE(Accepts({{"multipleOf", 2.5}}, 10));
  EXPECT_FALSE(Accepts({{"multipleOf", 1.5}}, 35));
  EXPECT_TRUE(Accepts({{"multipleOf", 3}}, -9));
  EXPECT_TRUE(Accepts({{"multipleOf", 0.5}}, 1e308));
  EXPECT_FALSE(Accepts({{"multipleOf", 0.123456789}}, 1e308));
  EXPECT_TRUE(Accepts({{"multipleOf", 7}}, 18446744073709551614ULL));
  EXPECT_FALSE(Accepts({{"multipleOf", 7}}, 18446744073709551615ULL));
  EXPECT_TRUE(Accepts({{"multipleOf", 1e-30}}, 3e-29));
  EXPECT_EQ(Schema({{"multipleOf", 0.5}}).Validate(0.3),
            (Errors{{"#", "must be a multiple of 0.5"}}));
}

TEST(JsonSchema, NumericBoundsAreInclusiveOrExclusiveAsNamed) {
  const JsonSchema s = Schema({{"maximum", 10}, {"minimum", 1}});
  EXPECT_TRUE(s.Accepts(10));
  EXPECT_TRUE(s.Accepts(1.0));
  EXPECT_EQ(s.Validate(10.5), (Errors{{"#", "must be <= 10"}}));
  EXPECT_EQ(s.Validate(0), (Errors{{"#", "must be >= 1"}}));
  const JsonSchema x = Schema({{"exclusiveMaximum", 10}, {"exclusiveMinimum", 1}});
  EXPECT_TRUE(x.Accepts(9.99));
  EXPECT_EQ(x.Validate(10), (Errors{{"#", "must be < 10"}}));
  EXPECT_EQ(x.Validate(1), (Errors{{"#", "must be > 1"}}));
  EXPECT_TRUE(s.Accepts("11"));  // only numbers are bounded
}

TEST(JsonSchema, NumericBoundsAreExactBeyondDoublePrecision) {
  EXPECT_FALSE(Accepts({{"maximum", 9007199254740992LL}}, 9007199254740993LL));
  EXPECT_TRUE(Accepts({{"maximum", 9007199254740993LL}}, 9007199254740993LL));
  EXPECT_FALSE(Accepts({{"maximum", 9223372036854775807LL}}, 9223372036854775808ULL));
  EXPECT_TRUE(Accepts({{"minimum", -9223372036854775807LL - 1}}, -9223372036854775807LL - 1));
  EXPECT_FALSE(Accepts({{"exclusiveMinimum", 0}}, -18446744073709551615.0));
}

TEST(JsonSchema, StringLengthCountsCodePoints) {
  const JsonSchema s = Schema({{"maxLength", 2}, {"minLength", 2}});
  EXPECT_TRUE(s.Accepts("\xC3\xA9\xF0\x9F\x98\x80"));  // "é😀": 6 bytes, 2 code points
  EXPECT_EQ(s.Validate("abc"), (Errors{{"#", "must be at most 2 characters long, got 3"}}));
  EXPECT_EQ(s.Validate("\xF0\x9F\x98\x80"),
            (Errors{{"#", "must be at least 2 characters long, got 1"}}));
  EXPECT_TRUE(s.Accepts(12345));  // only strings have a length
  EXPECT_TRUE(Accepts({{"maxLength", 2.0}}, "ab"));
}

TEST(JsonSchema, PatternSearchesUnlessAnchored) {
  EXPECT_TRUE(Accepts({{"pattern", "a+"}}, "xaay"));
  EXPECT_FALSE(Accepts({{"pattern", "^a+$"}}, "xaay"));
  EXPECT_TRUE(Accepts({{"pattern", "^a+$"}}, "aaa"));
  EXPECT_TRUE(Accepts({{"pattern", "^a+$"}}, 5));  // only strings are matched
  EXPECT_EQ(Schema({{"pattern", "^[a-z]+$"}}).Validate("Ab"),
            (Errors{{"#", "must match the pattern ^[a-z]+$"}}));
}

TEST(JsonSchema, PatternFollowsEcmaScriptSyntax) {
  auto match = [](std::string_view pattern, std::string_view text) {
    return Accepts({{"pattern", pattern}}, text);
  };
  // The repository's own route patterns.
  EXPECT_TRUE(match("^[A-Za-z0-9._-]{1,64}$", "arm-1.b_c"));
  EXPECT_FALSE(match("^[A-Za-z0-9._-]{1,64}$", std::string(65, 'a')));
  EXPECT_TRUE(match("^[0-7][0-9A-HJKMNP-TV-Z]{12}$", "0123456789ABC"));
  EXPECT_FALSE(match("^[0-7][0-9A-HJKMNP-TV-Z]{12}$", "0123456789ABI"));
  EXPECT_TRUE(match("^[0-9a-f]{16}-[0-9]+$", "0123456789abcdef-42"));
  // Alternation, groups, optional and counted repetition.
  EXPECT_TRUE(match("^(cat|dog)s?$", "dogs"));
  EXPECT_FALSE(match("^(cat|dog)s?$", "cow"));
  EXPECT_TRUE(match("^(?:ab){2,3}$", "ababab"));
  EXPECT_FALSE(match("^(?:ab){2,3}$", "abababab"));
  EXPECT_TRUE(match("^(?<year>\\d{4})-\\d{2}$", "2024-05"));
  EXPECT_TRUE(match("^a{2,}$", "aaaa"));
  EXPECT_TRUE(match("^a+?b*?$", "aab"));
  // Classes and escapes.
  EXPECT_TRUE(match("^\\d+$", "0123"));
  EXPECT_FALSE(match("^\\d+$", "\xE0\xA7\xA7"));  // Bengali digit one: \d is ASCII
  EXPECT_TRUE(match("^\\w+$", "a_Z9"));
  EXPECT_FALSE(match("^\\w$", "\xC3\xA9"));  // é is not \w
  EXPECT_TRUE(match("^\\s$", "\xC2\xA0"));   // no-break space is \s
  EXPECT_TRUE(match("^\\S\\D\\W$", "ab-"));
  EXPECT_TRUE(match("^[^a-c]$", "d"));
  EXPECT_FALSE(match("^[^a-c]$", "b"));
  EXPECT_TRUE(match("^[\\w.-]+$", "a.b-c"));
  EXPECT_TRUE(match("^[\\w-.]+$", "a.b-c"));  // Annex B: '-' beside a class is literal
  EXPECT_TRUE(match("^[-a]$", "-"));
  EXPECT_TRUE(match("^[a-]$", "-"));
  EXPECT_FALSE(match("^[]$", ""));  // "[]" matches nothing
  EXPECT_TRUE(match("^a[]?$", "a"));
  EXPECT_TRUE(match("^[^]$", "\n"));  // "[^]" matches anything
  EXPECT_TRUE(match("^\\t\\n$", "\t\n"));
  EXPECT_TRUE(match("^\\x41\\u0042\\u{43}$", "ABC"));
  EXPECT_TRUE(match("^\\cJ$", "\n"));
  EXPECT_TRUE(match("^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\/\\^\\$\\\\$", ".*+?()[]{}|/^$\\"));
  EXPECT_TRUE(match("^a{,2}$", "a{,2}"));  // not a quantifier: literal braces
  EXPECT_TRUE(match("^}]$", "}]"));
  // Assertions.
  EXPECT_TRUE(match("\\bcat\\b", "a cat sat"));
  EXPECT_FALSE(match("\\bcat\\b", "concatenate"));
  EXPECT_TRUE(match("\\Bcat\\B", "concatenate"));
  EXPECT_FALSE(match("^abc$", "abc\n"));  // $ is the end of input only
  EXPECT_FALSE(match("^.$", "\n"));       // . stops at line terminators
}

TEST(JsonSchema, PatternMatchesCodePointsNotBytes) {
  auto match = [](std::string_view pattern, std::string_view text) {
    return Accepts({{"pattern", pattern}}, text);
  };
  const std::string smile = "\xF0\x9F\x98\x80";  // U+1F600, four UTF-8 bytes
  EXPECT_TRUE(match("^.$", smile));
  EXPECT_TRUE(match("^.{3}$", "a\xC3\xA9" + smile));
  EXPECT_TRUE(match("^[^a]$", smile));
  EXPECT_TRUE(match("^caf\xC3\xA9+$", "caf\xC3\xA9\xC3\xA9"));  // + repeats the whole é
  EXPECT_TRUE(match("^[\xC3\xA0-\xC3\xBF]$", "\xC3\xA9"));      // [à-ÿ]
  EXPECT_TRUE(match("^\\u{1F600}$", smile));
  EXPECT_TRUE(match("^\\uD83D\\uDE00$", smile));  // a surrogate pair is one code point
}

TEST(JsonSchema, ArraySizeAndUniqueness) {
  const JsonSchema s = Schema({{"maxItems", 3}, {"minItems", 1}, {"uniqueItems", true}});
  EXPECT_TRUE(s.Accepts({1, 2, 3}));
  EXPECT_EQ(s.Validate(json::array()), (Errors{{"#", "must have at least 1 item, got 0"}}));
  EXPECT_EQ(s.Validate({1, 2, 3, 4}), (Errors{{"#", "must have at most 3 items, got 4"}}));
  EXPECT_EQ(s.Validate({1, "x", 1.0}),
            (Errors{{"#", "must have unique items, but items 0 and 2 are equal"}}));
  EXPECT_FALSE(s.Accepts(json::parse(R"([{"a": 1, "b": 2}, {"b": 2, "a": 1.0}])")));
  EXPECT_TRUE(s.Accepts(json::parse("[0, false, null]")));
  EXPECT_TRUE(s.Accepts(json::parse("[[1], [true]]")));
  EXPECT_TRUE(Accepts({{"uniqueItems", false}}, {1, 1}));
  EXPECT_TRUE(s.Accepts("not an array"));
}

TEST(JsonSchema, PrefixItemsThenItems) {
  const JsonSchema s = Schema(json::parse(
      R"({"prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": {"type": "integer"}})"));
  EXPECT_TRUE(s.Accepts(json::parse(R"(["a", true, 1, 2])")));
  EXPECT_TRUE(s.Accepts(json::parse(R"(["a"])")));
  EXPECT_EQ(s.Validate(json::parse(R"(["a", 1, "x"])")),
            (Errors{{"#/1", "must be of type boolean, got integer"},
                    {"#/2", "must be of type integer, got string"}}));
}

TEST(JsonSchema, ItemsFalseLimitsTheTuple) {
  const JsonSchema s = Schema(json::parse(R"({"prefixItems": [{}, {}], "items": false})"));
  EXPECT_TRUE(s.Accepts({1, 2}));
  EXPECT_EQ(s.Validate({1, 2, 3, 4}),
            (Errors{{"#/2", "is not allowed: the array may have at most 2 items"}}));
}

TEST(JsonSchema, ContainsCountsMatchingItems) {
  const JsonSchema s = Schema({{"contains", {{"type", "integer"}}}});
  EXPECT_TRUE(s.Accepts({"a", 1}));
  EXPECT_EQ(s.Validate({"a", "b"}),
            (Errors{{"#", "must contain at least 1 item matching contains, got 0"}}));
  EXPECT_FALSE(s.Accepts(json::array()));
  const JsonSchema range =
      Schema({{"contains", {{"const", 1}}}, {"minContains", 2}, {"maxContains", 3}});
  EXPECT_FALSE(range.Accepts({1, 2}));
  EXPECT_TRUE(range.Accepts({1, 1, 2}));
  EXPECT_TRUE(range.Accepts({1, 1, 1}));
  EXPECT_EQ(range.Validate({1, 1, 1, 1}),
            (Errors{{"#", "must contain at most 3 items matching contains, got more"}}));
  EXPECT_TRUE(Accepts({{"contains", {{"const", 1}}}, {"minContains", 0}}, json::array()));
}

TEST(JsonSchema, PropertyCountsAndRequired) {
  const JsonSchema s =
      Schema({{"maxProperties", 2}, {"minProperties", 1}, {"required", {"id", "a/b"}}});
  EXPECT_TRUE(s.Accepts({{"id", 1}, {"a/b", 2}}));
  EXPECT_EQ(s.Validate(json::object()), (Errors{{"#", "must have at least 1 property, got 0"},
                                                {"#/id", "is required"},
                                                {"#/a~1b", "is required"}}));
  EXPECT_EQ(s.Validate({{"id", 1}, {"a/b", 2}, {"c", 3}}),
            (Errors{{"#", "must have at most 2 properties, got 3"}}));
  EXPECT_TRUE(s.Accepts({1, 2, 3}));  // only objects have properties
}

TEST(JsonSchema, PropertiesPatternPropertiesAndAdditionalProperties) {
  const JsonSchema s = Schema(json::parse(R"({
      "properties": {"name": {"type": "string"}},
      "patternProperties": {"^x-": {"type": "integer"}, "e$": {"minLength": 2}},
      "additionalProperties": false})"));
  EXPECT_TRUE(s.Accepts(json::parse(R"({"name": "ab", "x-count": 3})")));
  // "name" matches both properties and the "e$" pattern: both apply.
  EXPECT_EQ(s.Validate(json::parse(R"({"name": "a", "x-count": "3", "other": 1})")),
            (Errors{{"#/name", "must be at least 2 characters long, got 1"},
                    {"#/other", "is not an allowed property"},
                    {"#/x-count", "must be of type integer, got string"}}));
  const JsonSchema typed = Schema(json::parse(R"({"additionalProperties": {"type": "string"}})"));
  EXPECT_EQ(typed.Validate(json::parse(R"({"a": "x", "b": 2})")),
            (Errors{{"#/b", "must be of type string, got integer"}}));
}

TEST(JsonSchema, PropertyNamesChecksEveryName) {
  const JsonSchema s = Schema(json::parse(R"({"propertyNames": {"pattern": "^[a-z]+$"}})"));
  EXPECT_TRUE(s.Accepts(json::parse(R"({"abc": 1})")));
  EXPECT_EQ(s.Validate(json::parse(R"({"abc": 1, "Bad": 2})")),
            (Errors{{"#/Bad", "is not an allowed property name"}}));
}

TEST(JsonSchema, DependentRequiredAndDependentSchemas) {
  const JsonSchema s = Schema(json::parse(R"({
      "dependentRequired": {"card": ["billing"]},
      "dependentSchemas": {"vip": {"required": ["level"]}}})"));
  EXPECT_TRUE(s.Accepts(json::object()));
  EXPECT_TRUE(s.Accepts(json::parse(R"({"card": 1, "billing": 2})")));
  EXPECT_EQ(
      s.Validate(json::parse(R"({"card": 1, "vip": true})")),
      (Errors{{"#/billing", "is required when card is present"}, {"#/level", "is required"}}));
}

TEST(JsonSchema, AllOfReportsEveryBranchesErrors) {
  const JsonSchema s = Schema(json::parse(R"({"allOf": [{"type": "string"}, {"minLength": 3}]})"));
  EXPECT_TRUE(s.Accepts("abc"));
  EXPECT_EQ(s.Validate("ab"), (Errors{{"#", "must be at least 3 characters long, got 2"}}));
  EXPECT_EQ(s.Validate(5), (Errors{{"#", "must be of type string, got integer"}}));
}

TEST(JsonSchema, AnyOfOneOfAndNotReportOneErrorEach) {
  const JsonSchema any = Schema(json::parse(R"({"anyOf": [{"type": "string"}, {"minimum": 3}]})"));
  EXPECT_TRUE(any.Accepts("x"));
  EXPECT_TRUE(any.Accepts(4));
  EXPECT_EQ(any.Validate(1), (Errors{{"#", "must match at least one schema of anyOf"}}));
  const JsonSchema one = Schema(json::parse(R"({"oneOf": [{"type": "integer"}, {"minimum": 3}]})"));
  EXPECT_TRUE(one.Accepts(1));
  EXPECT_TRUE(one.Accepts(3.5));
  EXPECT_EQ(one.Validate(4),
            (Errors{{"#",
                     "must match exactly one schema of oneOf, matched more than one (0 and "
                     "1)"}}));
  EXPECT_EQ(one.Validate(1.5),
            (Errors{{"#", "must match exactly one schema of oneOf, matched none"}}));
  const JsonSchema no = Schema(json::parse(R"({"not": {"type": "null"}})"));
  EXPECT_TRUE(no.Accepts(0));
  EXPECT_EQ(no.Validate(nullptr), (Errors{{"#", "must not match the schema of not"}}));
}

TEST(JsonSchema, IfThenElseChoosesABranch) {
  const JsonSchema s = Schema(json::parse(R"({
      "if": {"properties": {"kind": {"const": "card"}}, "required": ["kind"]},
      "then": {"required": ["number"]},
      "else": {"required": ["iban"]}})"));
  EXPECT_TRUE(s.Accepts(json::parse(R"({"kind": "card", "number": "4111"})")));
  EXPECT_TRUE(s.Accepts(json::parse(R"({"kind": "sepa", "iban": "DE00"})")));
  EXPECT_EQ(s.Validate(json::parse(R"({"kind": "card"})")), (Errors{{"#/number", "is required"}}));
  EXPECT_EQ(s.Validate(json::parse(R"({"kind": "sepa"})")), (Errors{{"#/iban", "is required"}}));
  // then/else without if, or if alone, never fail.
  EXPECT_TRUE(Accepts(json::parse(R"({"then": false, "else": false})"), 1));
  EXPECT_TRUE(Accepts(json::parse(R"({"if": false})"), 1));
}

TEST(JsonSchema, RefResolvesLocalPointers) {
  const JsonSchema s = Schema(json::parse(R"({
      "$defs": {"id": {"type": "string", "pattern": "^[0-9]+$"}, "a/b%c": {"const": 1}},
      "definitions": {"legacy": {"type": "boolean"}},
      "properties": {
        "id": {"$ref": "#/$defs/id"},
        "flag": {"$ref": "#/definitions/legacy"},
        "odd": {"$ref": "#/$defs/a~1b%25c"},
        "same": {"$ref": "#/properties/id"}}})"));
  EXPECT_TRUE(s.Accepts(json::parse(R"({"id": "42", "flag": true, "odd": 1, "same": "7"})")));
  EXPECT_EQ(s.Validate(json::parse(R"({"id": "x", "flag": 1, "odd": 2, "same": 3})")),
            (Errors{{"#/flag", "must be of type boolean, got integer"},
                    {"#/id", "must match the pattern ^[0-9]+$"},
                    {"#/odd", "must equal 1"},
                    {"#/same", "must be of type string, got integer"}}));
}

TEST(JsonSchema, RefToTheRootValidatesRecursiveData) {
  const JsonSchema tree = Schema(json::parse(R"({
      "type": "object",
      "required": ["value"],
      "properties": {"value": {"type": "integer"}, "children": {"items": {"$ref": "#"}}},
      "additionalProperties": false})"));
  EXPECT_TRUE(tree.Accepts(json::parse(
      R"({"value": 1, "children": [{"value": 2}, {"value": 3, "children": [{"value": 4}]}]})")));
  EXPECT_EQ(tree.Validate(json::parse(
                R"({"value": 1, "children": [{"value": 2, "children": [{"value": "x"}]}]})")),
            (Errors{{"#/children/0/children/0/value", "must be of type integer, got string"}}));
}

TEST(JsonSchema, RefSiblingsApplyIn2020ButNotInDraft07) {
  const json defs = {{"s", {{"type", "string"}}}};
  const JsonSchema modern = Schema({{"$defs", defs}, {"$ref", "#/$defs/s"}, {"maxLength", 1}});
  EXPECT_FALSE(modern.Accepts("ab"));
  const JsonSchema draft7 =
      Schema({{"$schema", "http://json-schema.org/draft-07/schema#"},
              {"definitions", defs},
              {"properties", {{"a", {{"$ref", "#/definitions/s"}, {"maxLength", 1}}}}}});
  EXPECT_TRUE(draft7.Accepts({{"a", "ab"}}));
  EXPECT_FALSE(draft7.Accepts({{"a", 1}}));
}

TEST(JsonSchema, Draft07TupleItemsAndDependencies) {
  const JsonSchema s = Schema(json::parse(R"({
      "$schema": "http://json-schema.org/draft-07/schema#",
      "items": [{"type": "string"}],
      "additionalItems": {"type": "integer"},
      "dependencies": {"a": ["b"], "c": {"required": ["d"]}}})"));
  EXPECT_TRUE(s.Accepts(json::parse(R"(["x", 1, 2])")));
  EXPECT_EQ(s.Validate(json::parse(R"(["x", "y"])")),
            (Errors{{"#/1", "must be of type integer, got string"}}));
  EXPECT_EQ(s.Validate(json::parse(R"({"a": 1, "c": 2})")),
            (Errors{{"#/b", "is required when a is present"}, {"#/d", "is required"}}));
  // additionalItems is ignored when items is a single schema, as draft-07 says.
  EXPECT_TRUE(Accepts(json::parse(R"({"$schema": "http://json-schema.org/draft-07/schema",
                                      "items": {}, "additionalItems": false})"),
                      {1, 2}));
}

TEST(JsonSchema, FormatAndOtherAnnotationsNeverChangeTheVerdict) {
  const JsonSchema s = Schema(json::parse(R"({
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "$id": "https://evo.dev/schemas/event.json",
      "$comment": "c", "title": "t", "description": "d", "default": 1, "examples": [1],
      "deprecated": false, "readOnly": false, "writeOnly": false,
      "contentMediaType": "application/json", "contentEncoding": "base64",
      "example": 1, "x-internal": true,
      "properties": {"email": {"type": "string", "format": "email"},
                     "at": {"format": "date-time"}}})"));
  EXPECT_TRUE(s.Accepts(json::parse(R"({"email": "not an email", "at": "yesterday"})")));
}

// --- Errors ------------------------------------------------------------------------------

TEST(JsonSchemaErrors, PointersEscapeMemberNames) {
  const JsonSchema s = Schema(json::parse(R"({"additionalProperties": {"type": "integer"}})"));
  EXPECT_EQ(s.Validate(json::parse(R"({"a/b~c": "x", "": "y"})")),
            (Errors{{"#/", "must be of type integer, got string"},
                    {"#/a~1b~0c", "must be of type integer, got string"}}));
}

TEST(JsonSchemaErrors, NestedFailuresPointIntoTheInstance) {
  const JsonSchema s = Schema(json::parse(R"({
      "properties": {"items": {"items": {"properties": {"name": {"type": "string"}},
                                         "required": ["sku"]}}}})"));
  EXPECT_EQ(s.Validate(json::parse(R"({"items": [{"sku": 1}, {"sku": 2}, {"name": 3}]})")),
            (Errors{{"#/items/2/sku", "is required"},
                    {"#/items/2/name", "must be of type string, got integer"}}));
}

TEST(JsonSchemaErrors, StopsAtMaxErrors) {
  const JsonSchema s = Schema({{"items", {{"type", "string"}}}});
  const json five = {1, 2, 3, 4, 5};
  EXPECT_EQ(s.Validate(five).size(), 5u);
  EXPECT_EQ(s.Validate(five, 2), (Errors{{"#/0", "must be of type string, got integer"},
                                         {"#/1", "must be of type string, got integer"}}));
  EXPECT_EQ(s.Validate(five, 0).size(), 1u);
  EXPECT_TRUE(s.Validate({"a", "b"}).empty());
}

TEST(JsonSchemaErrors, ValidateAndAcceptsAgree) {
  const JsonSchema s = Schema(json::parse(R"({"anyOf": [{"not": {"const": 1}}, {"const": 1}],
                                              "oneOf": [{"type": "integer"}, {"type": "string"}]})"));
  for (const json& v : {json(1), json("x"), json(1.5), json(nullptr)}) {
    EXPECT_EQ(s.Accepts(v), s.Validate(v).empty()) << v;
  }
}

// --- Compile errors ----------------------------------------------------------------------

TEST(JsonSchemaCompile, MalformedKeywordNamesItsPointer) {
  const Status s = CompileError(json::parse(R"({"properties": {"a": {"minimum": "1"}}})"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "#/properties/a/minimum: must be a number");
  EXPECT_EQ(s.GetPayload(kPayloadPointer), "#/properties/a/minimum");
}

TEST(JsonSchemaCompile, RejectsMalformedKeywords) {
  for (const char* schema : {
           R"({"type": "float"})",
           R"({"type": ["string", "string"]})",
           R"({"type": []})",
           R"({"enum": 1})",
           R"({"multipleOf": 0})",
           R"({"multipleOf": -1})",
           R"({"maximum": true})",
           R"({"maxLength": -1})",
           R"({"minItems": 1.5})",
           R"({"uniqueItems": "yes"})",
           R"({"required": ["a", "a"]})",
           R"({"required": [1]})",
           R"({"properties": []})",
           R"({"properties": {"a": 1}})",
           R"({"allOf": []})",
           R"({"anyOf": {}})",
           R"({"not": "x"})",
           R"({"prefixItems": []})",
           R"({"dependentRequired": {"a": "b"}})",
           R"({"format": 1})",
           R"({"$ref": 1})",
           R"({"$ref": "#/$defs/missing"})",
           R"({"$ref": "#/$defs/x~2"})",
           R"({"$ref": "#/$defs/x%zz"})",
           R"({"$defs": {"x": 1}, "$ref": "#/$defs/x"})",
           R"({"pattern": "("})",
       }) {
    const Status s = CompileError(json::parse(schema));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << schema;
    EXPECT_EQ(s.message().find("unsupported"), std::string_view::npos) << schema;
  }
  EXPECT_EQ(CompileError(json::array()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CompileError(1).code(), StatusCode::kInvalidArgument);
}

TEST(JsonSchemaCompile, RejectsUnknownKeywordsInsteadOfIgnoringThem) {
  const Status s = CompileError(json::parse(R"({"properties": {"a": {"maxLenght": 3}}})"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "#/properties/a/maxLenght: unknown keyword \"maxLenght\" (a vendor annotation must "
            "start with \"x-\")");
  EXPECT_TRUE(JsonSchema::Compile(json::parse(R"({"x-anything": {"goes": 1}})")).ok());
}

TEST(JsonSchemaCompile, RejectsUnsupportedFeaturesSayingSo) {
  for (const char* schema : {
           R"({"$ref": "https://example.com/other.json"})",
           R"({"$ref": "other.json#/a"})",
           R"({"$ref": "#anchor"})",
           R"({"$id": "https://evo.dev/a.json", "$ref": "https://evo.dev/b.json#/x"})",
           R"({"$dynamicRef": "#meta"})",
           R"({"$recursiveRef": "#"})",
           R"({"unevaluatedProperties": false})",
           R"({"unevaluatedItems": false})",
           R"({"properties": {"a": {"$id": "a.json"}}})",
           R"({"properties": {"a": {"$schema": "https://json-schema.org/draft/2020-12/schema"}}})",
           R"({"$schema": "http://json-schema.org/draft-04/schema#"})",
           R"({"additionalItems": false})",
           R"({"items": [{}]})",
           R"({"dependencies": {"a": ["b"]}})",
           R"({"$schema": "http://json-schema.org/draft-07/schema#", "prefixItems": [{}]})",
           R"({"$schema": "http://json-schema.org/draft-07/schema#", "minContains": 1})",
           R"j({"pattern": "(?=a)"})j",
           R"j({"pattern": "(?<!a)b"})j",
           R"j({"pattern": "(a)\\1"})j",
           R"({"pattern": "\\p{L}"})",
           R"({"patternProperties": {"\\P{L}": {}}})",
       }) {
    const Status s = CompileError(json::parse(schema));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << schema;
    EXPECT_NE(s.message().find("unsupported"), std::string_view::npos) << schema << ": " << s;
  }
}

TEST(JsonSchemaCompile, RejectsInvalidPatterns) {
  for (const char* pattern :
       {"(",     ")",      "a**",    "a{2}{3}", "*a",      "+",          "?",     "{1}",
        "[z-a]", "[a",     "a{3,1}", "\\",      "\\e",     "\\x4",       "\\u12", "\\c1",
        "(?x)",  "(?<>a)", "^*",     "\\b+",    "a{1001}", "\\u{110000}"}) {
    const Status s = CompileError({{"pattern", pattern}});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << pattern;
    EXPECT_EQ(s.GetPayload(kPayloadPointer), "#/pattern") << pattern;
  }
  const Status s = CompileError(json::parse(R"({"patternProperties": {"[": {}}})"));
  EXPECT_EQ(s.message(), "#/patternProperties/[: invalid regular expression: missing ']'");
}

// --- Hostile schemas and payloads ---------------------------------------------------------

TEST(JsonSchemaLimits, DeeplyNestedSchemaIsRejected) {
  json schema = true;
  for (int i = 0; i < 1000; ++i) {
    schema = json{{"not", std::move(schema)}};
  }
  const Status s = CompileError(schema);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "#: schema nested deeper than 64 levels");
  json ok = true;
  for (int i = 0; i < 60; ++i) {
    ok = json{{"not", std::move(ok)}};
  }
  EXPECT_TRUE(Schema(ok).Accepts(1));  // an even number of nots
}

TEST(JsonSchemaLimits, OversizedSchemaIsRejected) {
  json big = json::object();
  for (int i = 0; i < 1000; ++i) {
    big[fmt::format("p{}", i)] = {{"description", std::string(60, 'x')}};
  }
  const Status s = CompileError({{"properties", big}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "#: schema larger than 65536 bytes");
}

TEST(JsonSchemaLimits, RefCycleEndsWithAnErrorInsteadOfHanging) {
  for (const char* text :
       {R"({"$ref": "#"})", R"({"not": {"$ref": "#"}})",
        R"({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}},
                               "$ref": "#/$defs/a"})"}) {
    const JsonSchema s = Schema(json::parse(text));
    EXPECT_FALSE(s.Accepts(1)) << text;
    const Errors errors = s.Validate(1);
    ASSERT_EQ(errors.size(), 1u) << text;
    EXPECT_EQ(errors[0].message,
              "schema evaluation nested deeper than 64 subschemas (a $ref cycle?)");
  }
}

TEST(JsonSchemaLimits, ExponentialSchemaStopsAtTheStepBudget) {
  // Each level tries two branches that both fail at the bottom: 2^30 evaluations.
  json defs = json::object();
  for (int i = 0; i < 30; ++i) {
    const std::string next = fmt::format("#/$defs/d{}", i + 1);
    defs[fmt::format("d{}", i)] = {{"anyOf", {{{"$ref", next}}, {{"$ref", next}}}}};
  }
  defs["d30"] = false;
  const JsonSchema s = Schema({{"$defs", defs}, {"$ref", "#/$defs/d0"}});
  const auto start = std::chrono::steady_clock::now();
  const Errors errors = s.Validate(1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message,
            "validation stopped after 1000016 steps (the step budget for this instance)");
  EXPECT_FALSE(s.Accepts(1));
}

TEST(JsonSchemaLimits, CatastrophicPatternsRunInLinearTime) {
  const std::string input = std::string(100'000, 'a') + "!";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(Accepts({{"pattern", "^(a+)+$"}}, input));
  EXPECT_FALSE(Accepts({{"pattern", "^(a|a)*$"}}, input));
  EXPECT_FALSE(Accepts({{"pattern", "(a|b)*c"}}, input));
  EXPECT_TRUE(Accepts({{"pattern", "^(a|b)*!$"}}, input));  // std::regex overflows the stack here
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(JsonSchemaLimits, PatternWorkCountsAgainstTheStepBudget) {
  // Up to 1000 live automaton states at each of 100,000 positions.
  const JsonSchema s = Schema({{"pattern", "[ab]{0,1000}c"}});
  const Errors errors = s.Validate(std::string(100'000, 'a'));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message,
            "validation stopped after 2600016 steps (the step budget for this instance)");
}

TEST(JsonSchemaLimits, LargeValidPayloadsFitTheStepBudget) {
  const JsonSchema s = Schema(json::parse(R"({
      "$defs": {"item": {"type": "object", "required": ["id", "tags"],
                         "properties": {"id": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"},
                                        "tags": {"type": "array", "uniqueItems": true,
                                                 "items": {"$ref": "#/$defs/tag"}}},
                         "additionalProperties": false},
                "tag": {"type": "string", "pattern": "^[a-z0-9_]{1,32}$"}},
      "type": "array", "items": {"allOf": [{"$ref": "#/$defs/item"}]}})"));
  json items = json::array();
  for (int i = 0; i < 20'000; ++i) {
    items.push_back({{"id", "item-" + std::to_string(i)}, {"tags", {"alpha_1", "beta_22", "c"}}});
  }
  EXPECT_TRUE(s.Validate(items).empty());
  EXPECT_TRUE(s.Accepts(items));
}

TEST(JsonSchemaLimits, OversizedPatternsAreRejected) {
  const std::string too_long(1025, 'a');
  EXPECT_EQ(CompileError({{"pattern", too_long}}).message(),
            "#/pattern: invalid regular expression: pattern longer than 1024 bytes");
  EXPECT_EQ(CompileError({{"pattern", "(?:a{1000}){1000}"}}).message(),
            "#/pattern: invalid regular expression: pattern compiles to more than 10000 "
            "automaton states");
  EXPECT_EQ(CompileError({{"pattern", "(?:(?:(?:(?:){1000}){1000}){1000}){1000}"}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CompileError({{"pattern", std::string(33, '(') + std::string(33, ')')}}).message(),
            "#/pattern: invalid regular expression: groups nested deeper than 32");
  EXPECT_TRUE(
      JsonSchema::Compile({{"pattern", std::string(32, '(') + "a" + std::string(32, ')')}}).ok());
  json many = json::object();  // each pattern is fine, all of them together are not
  for (int i = 0; i < 20; ++i) {
    many[fmt::format("p{}", i)] = {{"pattern", "(?:abcd){1000}(?:ef){1000}"}};
  }
  const Status s = CompileError({{"properties", many}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("more than 100000 automaton states in all"), std::string_view::npos)
      << s;
}

TEST(JsonSchemaLimits, DeeplyNestedInstanceIsCompared) {
  // Parsed rather than built: nlohmann's parser is iterative, its copy is not.
  const std::string deep = std::string(100'000, '[') + "1" + std::string(100'000, ']');
  // const, enum and uniqueItems compare without recursion.
  EXPECT_FALSE(Accepts({{"const", {1}}}, json::parse(deep)));
  EXPECT_FALSE(Accepts({{"enum", {1, 2}}}, json::parse(deep)));
  EXPECT_FALSE(Accepts({{"uniqueItems", true}}, json::parse("[" + deep + "," + deep + "]")));
  EXPECT_TRUE(Accepts({{"uniqueItems", true}}, json::parse("[" + deep + ", 2]")));
}

TEST(JsonSchema, ValidatesConcurrentlyFromManyThreads) {
  const JsonSchema s = Schema(json::parse(R"({
      "type": "object", "required": ["id"],
      "properties": {"id": {"type": "string", "pattern": "^[a-z]+[0-9]*$"}}})"));
  std::vector<std::thread> threads;
  threads.reserve(4);
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s, &wrong, t] {
      for (int i = 0; i < 2000; ++i) {
        const bool good = (i + t) % 2 == 0;
        const json v = {{"id", good ? "abc" + std::to_string(i) : std::to_string(i) + "abc"}};
        if (s.Accepts(v) != good || s.Validate(v).empty() != good) {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(wrong.load(), 0);
}

TEST(JsonSchema, CopiesShareTheCompiledSchema) {
  const JsonSchema a = Schema({{"type", "string"}});
  const JsonSchema b = a;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_TRUE(b.Accepts("x"));
  EXPECT_FALSE(b.Accepts(1));
}

// --- The official JSON Schema Test Suite ----------------------------------------------------

// The suite's root (holding tests/draft7/...): $EVO_JSON_SCHEMA_SUITE, else where Debian's
// json-schema-test-suite package puts it.
std::filesystem::path SuiteRoot() {
  const char* env = std::getenv("EVO_JSON_SCHEMA_SUITE");
  return env != nullptr && *env != '\0'
             ? std::filesystem::path(env)
             : std::filesystem::path("/usr/share/json-schema-test-suite");
}

struct SuiteCounts {
  int files = 0;
  int passed = 0;
  int failed = 0;
  int skipped_groups = 0;
  int skipped_cases = 0;
};

// Runs the named files of one draft. A test group is skipped only when Compile says its
// schema is unsupported (remote refs, $id, ...); any other Compile error fails.
SuiteCounts RunSuite(const std::string& draft, std::span<const std::string_view> files,
                     const json& dialect) {
  SuiteCounts counts;
  const std::filesystem::path dir = SuiteRoot() / "tests" / draft;
  for (const std::string_view file : files) {
    std::ifstream in(dir / file);
    if (!in) {
      std::cout << "[suite] " << draft << "/" << file << ": not in this suite version\n";
      continue;
    }
    ++counts.files;
    const json groups = json::parse(in);
    for (const json& group : groups) {
      json schema = group["schema"];
      if (schema.is_object() && !schema.contains("$schema") && !dialect.is_null()) {
        schema["$schema"] = dialect;
      }
      std::string where = draft;
      where.append("/").append(file).append(": ").append(group["description"].get<std::string>());
      if (file.starts_with("optional/") && schema.dump().find("\"format\"") != std::string::npos) {
        // Optional format assertions; format is an annotation here.
        ++counts.skipped_groups;
        counts.skipped_cases += static_cast<int>(group["tests"].size());
        std::cout << "[suite] skipped " << where << " (format is not asserted)\n";
        continue;
      }
      auto compiled = JsonSchema::Compile(schema);
      if (!compiled.ok()) {
        const Status& s = compiled.status();
        const bool unsupported = s.code() == StatusCode::kInvalidArgument &&
                                 (s.message().find("unsupported") != std::string_view::npos ||
                                  s.message().find("unknown keyword") != std::string_view::npos);
        EXPECT_TRUE(unsupported) << where << ": " << s;
        ++counts.skipped_groups;
        counts.skipped_cases += static_cast<int>(group["tests"].size());
        std::cout << "[suite] skipped " << where << " (" << s.message() << ")\n";
        continue;
      }
      for (const json& test : group["tests"]) {
        const bool want = test["valid"].get<bool>();
        const bool accepted = compiled->Accepts(test["data"]);
        const bool validated = compiled->Validate(test["data"]).empty();
        if (accepted == want && validated == want) {
          ++counts.passed;
        } else {
          ++counts.failed;
          ADD_FAILURE() << where << " / " << test["description"].get<std::string>()
                        << ": want valid=" << want << ", Accepts=" << accepted
                        << ", Validate empty=" << validated;
        }
      }
    }
  }
  std::cout << "[suite] " << draft << ": " << counts.files << " files, " << counts.passed
            << " cases passed, " << counts.failed << " failed, " << counts.skipped_cases
            << " cases in " << counts.skipped_groups << " unsupported groups skipped\n";
  return counts;
}

// The suite files for the supported keywords. Left out: format and content (annotations
// here), refRemote, id/anchor/dynamicRef/unevaluated* (unsupported), vocabulary.
constexpr std::string_view kDraft2020Files[] = {"additionalProperties.json",
                                                "allOf.json",
                                                "anyOf.json",
                                                "boolean_schema.json",
                                                "const.json",
                                                "contains.json",
                                                "default.json",
                                                "defs.json",
                                                "dependentRequired.json",
                                                "dependentSchemas.json",
                                                "enum.json",
                                                "exclusiveMaximum.json",
                                                "exclusiveMinimum.json",
                                                "if-then-else.json",
                                                "infinite-loop-detection.json",
                                                "items.json",
                                                "maxContains.json",
                                                "maxItems.json",
                                                "maxLength.json",
                                                "maxProperties.json",
                                                "maximum.json",
                                                "minContains.json",
                                                "minItems.json",
                                                "minLength.json",
                                                "minProperties.json",
                                                "minimum.json",
                                                "multipleOf.json",
                                                "not.json",
                                                "oneOf.json",
                                                "pattern.json",
                                                "patternProperties.json",
                                                "prefixItems.json",
                                                "properties.json",
                                                "propertyNames.json",
                                                "ref.json",
                                                "required.json",
                                                "type.json",
                                                "uniqueItems.json",
                                                "optional/bignum.json",
                                                "optional/ecmascript-regex.json",
                                                "optional/float-overflow.json",
                                                "optional/non-bmp-regex.json",
                                                "optional/refOfUnknownKeyword.json"};

constexpr std::string_view kDraft7Files[] = {"additionalItems.json",
                                             "additionalProperties.json",
                                             "allOf.json",
                                             "anyOf.json",
                                             "boolean_schema.json",
                                             "const.json",
                                             "contains.json",
                                             "default.json",
                                             "definitions.json",
                                             "dependencies.json",
                                             "enum.json",
                                             "exclusiveMaximum.json",
                                             "exclusiveMinimum.json",
                                             "if-then-else.json",
                                             "infinite-loop-detection.json",
                                             "items.json",
                                             "maxItems.json",
                                             "maxLength.json",
                                             "maxProperties.json",
                                             "maximum.json",
                                             "minItems.json",
                                             "minLength.json",
                                             "minProperties.json",
                                             "minimum.json",
                                             "multipleOf.json",
                                             "not.json",
                                             "oneOf.json",
                                             "pattern.json",
                                             "patternProperties.json",
                                             "properties.json",
                                             "propertyNames.json",
                                             "ref.json",
                                             "required.json",
                                             "type.json",
                                             "uniqueItems.json",
                                             "optional/bignum.json",
                                             "optional/ecmascript-regex.json",
                                             "optional/float-overflow.json",
                                             "optional/non-bmp-regex.json",
                                             "optional/zeroTerminatedFloats.json"};

TEST(JsonSchemaSuite, Draft2020_12CasesPass) {
  if (!std::filesystem::is_directory(SuiteRoot() / "tests" / "draft2020-12")) {
    GTEST_SKIP() << "no draft2020-12 in " << SuiteRoot()
                 << " (Debian 12's json-schema-test-suite 2.0.0 stops at draft7)";
  }
  const SuiteCounts counts = RunSuite("draft2020-12", kDraft2020Files, json());
  EXPECT_GT(counts.passed, 0);
  EXPECT_EQ(counts.failed, 0);
}

TEST(JsonSchemaSuite, Draft7CasesPass) {
  if (!std::filesystem::is_directory(SuiteRoot() / "tests" / "draft7")) {
    GTEST_SKIP() << "no JSON Schema Test Suite at " << SuiteRoot()
                 << " (apt-get install json-schema-test-suite, or set EVO_JSON_SCHEMA_SUITE)";
  }
  const SuiteCounts counts =
      RunSuite("draft7", kDraft7Files, "http://json-schema.org/draft-07/schema#");
  EXPECT_GT(counts.passed, 300);
  EXPECT_EQ(counts.failed, 0);
}

}  // namespace
}  // namespace evo::http
