// Message parser of the spam module: turns what a client submitted into the human-visible text
// the tokeniser sees (tokenizer.hpp), split into subject and body.
//
// The input is either a raw RFC 822 e-mail (MIME multipart, base64 or quoted-printable, HTML,
// RFC 2047 encoded subjects) or plain text. Header detection is deliberately lenient, because
// the Enron-Spam corpus stores a message as a `Subject:` line followed directly by the body,
// with no blank line: the input has a header block only if its first line starts with a field
// name and a colon (`^[!-9;-~]+:`); the block then runs over field and continuation lines and
// ends at a blank line (dropped) or at the first line that is neither (kept as body). A line
// that starts with a URL ("http://...") is never a field. LF and CRLF are both accepted. An mbox
// "From " line in front of the header block is skipped. Note the price of leniency: in an
// Enron-style message, a body line right after the Subject that looks like a field ("note: ...")
// is taken as one and dropped.
//
//   Message m = ParseMessage("Subject: cheap meds\nbuy now\n");
//   // m.subject == "cheap meds", m.body == "buy now\n", m.had_headers == true
//
// What ends up in `body`:
//   - text/plain and text/html parts (a part without Content-Type is text/plain), with their
//     Content-Transfer-Encoding (base64, quoted-printable) undone, joined by "\n";
//   - in a multipart/alternative, only the plain version when there is one;
//   - message/rfc822 parts, recursed into; their subject becomes a line of body text;
//   - nothing from any other type (images, application/*, other text/* subtypes).
// HTML becomes text: script, style and head content and comments are dropped, a tag becomes a
// space (a block tag such as br, p, div, tr, li a newline; an inline formatting tag such as b,
// i, font, span nothing, so "V<b>i</b>agra" stays one word), entities are decoded (numeric ones,
// the XML five, HTML 4's Latin-1 set and common typographic ones; &nbsp; as a plain space, &shy;
// as nothing; unknown ones are kept as written), and the target of every http(s) href or src
// attribute is kept as " URL " where its tag was. Text without a Content-Type that contains "<html"
// or "<body" (any case) is taken as HTML. CRLF in the body becomes LF.
//
// Charsets (charset.hpp has the rules): the output is always valid UTF-8 in NFC, the same
// for a message whether it arrives as raw bytes (a file) or as text a client decoded from them
// (JSON). Parts and RFC 2047 encoded-words are decoded by their declared charset (any that
// iconv knows); undeclared bytes that are not UTF-8 are read as windows-1252. Input that is
// valid UTF-8 with no character above U+00FF and some above U+007F is first turned back into
// the bytes a Latin-1 decoder read it from (UndoLatin1), so that a file a client decoded as
// Latin-1 parses exactly as its bytes do. A literal (not base64 or quoted-printable) 8-bit
// part that is valid UTF-8 is taken as UTF-8 whatever charset it declares: the client has
// decoded it already. NUL bytes are data (they separate tokens like other control
// characters).
//
// Limits: multipart and message/rfc822 nesting is followed 8 levels deep and 256 parts in all;
// what lies deeper or further is ignored. Work and memory are linear in the input size.
//
// ParseMessage never fails and never throws: any byte string, truncated or malformed, yields a
// Message (if memory runs out, an empty one).
//
// Thread safety: a pure function; call it from any thread.
#pragma once

#include <string>
#include <string_view>

namespace evo::spam {

// The human-visible text of a message: what the tokeniser sees.
struct Message {
  std::string subject;       // Subject header, unfolded, RFC 2047 encoded-words decoded, UTF-8
  std::string body;          // all text parts, decoded, HTML stripped, joined by "\n"
  bool had_headers = false;  // true if an RFC 822 header block was recognised
  std::string from;          // From header, unfolded, encoded-words decoded ("" if none)
};

// Never fails and never throws on any input (binary garbage, truncated MIME, etc.).
// Bounded work: O(input size).
Message ParseMessage(std::string_view raw);

// A Subject value read as ParseMessage reads the Subject header (Latin-1 undone, encoded-words
// decoded, normalised): for a subject given apart from the text. Never fails.
std::string ParseSubject(std::string_view value);

}  // namespace evo::spam
