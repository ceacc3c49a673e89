#include "spam/message.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace evo::spam {
namespace {

// For EXPECT_TRUE / EXPECT_FALSE, with the text in the failure message either way.
::testing::AssertionResult Has(std::string_view text, std::string_view part) {
  if (text.find(part) == std::string_view::npos) {
    return ::testing::AssertionFailure() << "\"" << text << "\" lacks \"" << part << "\"";
  }
  return ::testing::AssertionSuccess() << "\"" << text << "\" has \"" << part << "\"";
}

// Turns "\n" into "\r\n" for the CRLF variants of the fixtures.
std::string Crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') {
      out.push_back('\r');
    }
    out.push_back(c);
  }
  return out;
}

// A message with a bit of everything, for the robustness tests.
constexpr std::string_view kComplex =
    "From spammer@example.com Mon Jan  1 00:00:00 2024\n"
    "Received: from mx.example.com\n"
    "\tby mail.example.org; Mon, 1 Jan 2024 00:00:00 +0000\n"
    "Subject: =?UTF-8?B?Q2Fmw6kgY3LDqG1l?= and\n"
    " =?iso-8859-1?Q?caf=E9?= deals\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"==outer==\"\n"
    "\n"
    "preamble to ignore\n"
    "--==outer==\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Cheap caf=C3=A9 deals, soft=\n"
    "break here\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<html><body><p>html &amp; alternative</p></body></html>\n"
    "--inner--\n"
    "--==outer==\n"
    "Content-Type: text/html; charset=windows-1252\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "<html><head><title>t</title></head><body><script>bad()</script>\n"
    "<a href=3D\"http://spam.example.com/buy?a=3D1&amp;b=3D2\">click =80 here</a>\n"
    "<!-- comment --></body></html>\n"
    "--==outer==\n"
    "Content-Type: image/png; name=\"x.png\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "R0lGODlhAQABAHNlY3JldGltYWdlcGF5bG9hZA==\n"
    "--==outer==\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: forwarded one\n"
    "Content-Type: text/plain\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "Zm9yd2FyZGVkIGJvZHk=\n"
    "--==outer==--\n"
    "epilogue to ignore\n";

TEST(Message, EnronStyleSubjectLineThenBodyWithoutBlankLine) {
  const Message m =
      ParseMessage("Subject: re : meeting tomorrow\nplease review the attached\nthanks , vince\n");
  EXPECT_TRUE(m.had_headers);
  EXPECT_EQ(m.subject, "re : meeting tomorrow");
  EXPECT_EQ(m.body, "please review the attached\nthanks , vince\n");
}

TEST(Message, EnronStyleHtmlBodyIsStripped) {
  const Message m = ParseMessage("Subject: hi\n<html><body>Buy <b>now</b></body></html>\n");
  EXPECT_EQ(m.subject, "hi");
  EXPECT_TRUE(Has(m.body, "Buy now"));
  EXPECT_FALSE(Has(m.body, "<"));
}

TEST(Message, PlainTextWithoutHeadersIsAllBody) {
  const Message m = ParseMessage("Dear friend: hello there, a < b\nbye\n");
  EXPECT_FALSE(m.had_headers);
  EXPECT_EQ(m.subject, "");
  EXPECT_EQ(m.body, "Dear friend: hello there, a < b\nbye\n");
}

TEST(Message, UrlLineIsNotAHeader) {
  const Message plain = ParseMessage("http://buy.example.com/ now\nmore\n");
  EXPECT_FALSE(plain.had_headers);
  EXPECT_EQ(plain.body, "http://buy.example.com/ now\nmore\n");
  const Message enron = ParseMessage("Subject: hot stock\nhttp://buy.example.com\nmore\n");
  EXPECT_EQ(enron.subject, "hot stock");
  EXPECT_EQ(enron.body, "http://buy.example.com\nmore\n");
}

TEST(Message, EmptyInput) {
  const Message m = ParseMessage("");
  EXPECT_FALSE(m.had_headers);
  EXPECT_EQ(m.subject, "");
  EXPECT_EQ(m.body, "");
}

TEST(Message, PlainTextThatLooksLikeHtmlIsStripped) {
  const Message m = ParseMessage("<HTML><BODY>Hi <b>there</b></BODY></HTML>");
  EXPECT_FALSE(m.had_headers);
  EXPECT_EQ(m.body, "Hi there\n");
}

TEST(Message, FullRfc822WithBlankLine) {
  const Message m = ParseMessage(
      "Return-Path: <bob@example.com>\n"
      "Received: from a by b\n"
      "    with SMTP; Mon, 1 Jan 2024\n"
      "From: Bob <bob@example.com>\n"
      "To: alice@example.com\n"
      "SUBJECT: Lunch\n"
      "X-Mailer: test\n"
      "\n"
      "Hi Alice,\n"
      "Note: this line is body.\n"
      "\n"
      "Lunch at noon?\n");
  EXPECT_TRUE(m.had_headers);
  EXPECT_EQ(m.subject, "Lunch");
  EXPECT_EQ(m.body, "Hi Alice,\nNote: this line is body.\n\nLunch at noon?\n");
}

TEST(Message, HeaderBlockEndsAtFirstNonHeaderLine) {
  const Message m = ParseMessage("From: a@b.c\nSubject: x\nthis is body\nKey: value\n");
  EXPECT_EQ(m.subject, "x");
  EXPECT_EQ(m.body, "this is body\nKey: value\n");
}

TEST(Message, MboxFromLineIsSkipped) {
  const Message m = ParseMessage("From someone@example.com Mon Jan 1\nSubject: hi\n\nbody\n");
  EXPECT_TRUE(m.had_headers);
  EXPECT_EQ(m.subject, "hi");
  EXPECT_EQ(m.body, "body\n");
}

TEST(Message, FoldedSubjectIsUnfolded) {
  const Message m =
      ParseMessage("Subject: this is\n a folded  \n\tsubject line\nFrom: a@b.c\n\nbody\n");
  EXPECT_EQ(m.subject, "this is a folded subject line");
  EXPECT_EQ(m.body, "body\n");
}

TEST(Message, FirstSubjectWins) {
  const Message m = ParseMessage("Subject: first\nSubject: second\n\nbody");
  EXPECT_EQ(m.subject, "first");
}

TEST(Message, Rfc2047Base64Utf8Subject) {
  const Message m = ParseMessage("Subject: =?UTF-8?B?Q2Fmw6kgY3LDqG1l?=\n\nx");
  EXPECT_EQ(m.subject, "Caf\xC3\xA9 cr\xC3\xA8me");
}

TEST(Message, Rfc2047QuotedIso88591Subject) {
  const Message m = ParseMessage("Subject: =?iso-8859-1?Q?Caf=E9_au_lait?=\n\nx");
  EXPECT_EQ(m.subject, "Caf\xC3\xA9 au lait");
}

TEST(Message, Rfc2047WhitespaceBetweenAdjacentWordsIsDropped) {
  const Message m = ParseMessage("Subject: Re: =?utf-8?q?Hello?=\n =?utf-8?q?_World?= !\n\nx");
  EXPECT_EQ(m.subject, "Re: Hello World !");
}

TEST(Message, Rfc2047Windows1252AndUnknownCharsets) {
  EXPECT_EQ(ParseMessage("Subject: =?windows-1252?Q?=80_100?=\n\nx").subject, "\xE2\x82\xAC 100");
  // Any charset iconv knows is decoded; an unknown one falls back to windows-1252.
  EXPECT_EQ(ParseMessage("Subject: =?koi8-r?B?wdLC?=\n\nx").subject, "\xD0\xB0\xD1\x80\xD0\xB1");
  EXPECT_EQ(ParseMessage("Subject: =?x-unknown-charset?Q?caf=E9?=\n\nx").subject, "caf\xC3\xA9");
}

TEST(Message, Rfc2047WordsInManyCharsets) {
  EXPECT_EQ(ParseMessage("Subject: =?GB2312?B?1tDOxA==?= =?shift_jis?B?k/qWe4zq?=\n\nx").subject,
            "\xE4\xB8\xAD\xE6\x96\x87\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");  // 中文日本語
  EXPECT_EQ(ParseMessage("Subject: =?utf-16?B?//5HAHIA/ADfAGUAIACsIA==?=\n\nx").subject,
            "Gr\xC3\xBC\xC3\x9F"
            "e \xE2\x82\xAC");
  EXPECT_EQ(ParseMessage("Subject: =?iso-8859-2?Q?=A3=F3d=BC?=\n\nx").subject,
            "\xC5\x81\xC3\xB3"
            "d\xC5\xBA");
  // Raw 8-bit bytes around an encoded word: windows-1252.
  EXPECT_EQ(ParseMessage("Subject: caf\xE9 =?utf-8?Q?caf=C3=A9?=\n\nx").subject,
            "caf\xC3\xA9 caf\xC3\xA9");
}

TEST(Message, MalformedEncodedWordsAreKeptLiterally) {
  const std::string subject = "=?utf-8?x?abc?= and =?utf-8?q?unterminated";
  EXPECT_EQ(ParseMessage("Subject: " + subject + "\n\nx").subject, subject);
  EXPECT_EQ(ParseMessage("Subject: =?=?=?\?=?=\n\nx").subject, "=?=?=?\?=?=");
}

TEST(Message, MultipartAlternativePrefersPlain) {
  const Message m = ParseMessage(
      "From: a@b.c\n"
      "Subject: alt\n"
      "MIME-Version: 1.0\n"
      "Content-Type: multipart/alternative;\n"
      "\tboundary=\"ALT\"\n"
      "\n"
      "This is a multi-part message in MIME format.\n"
      "--ALT\n"
      "Content-Type: text/html\n"
      "\n"
      "<html><body><p>html version</p></body></html>\n"
      "--ALT\n"
      "Content-Type: text/plain; charset=us-ascii\n"
      "\n"
      "plain version\n"
      "--ALT--\n"
      "epilogue\n");
  EXPECT_EQ(m.subject, "alt");
  EXPECT_EQ(m.body, "plain version");
}

TEST(Message, MultipartAlternativeWithOnlyHtmlUsesHtml) {
  const Message m = ParseMessage(
      "Content-Type: multipart/alternative; boundary=ALT\n"
      "\n"
      "--ALT\n"
      "Content-Type: image/gif\n"
      "\n"
      "GIF89a\n"
      "--ALT\n"
      "Content-Type: text/html\n"
      "\n"
      "<p>html version</p>\n"
      "--ALT--\n");
  EXPECT_EQ(m.body, "html version\n");
}

TEST(Message, MultipartMixedSkipsImagesAndAttachments) {
  const Message m = ParseMessage(
      "Subject: watches\n"
      "Content-Type: multipart/mixed; boundary=MIX\n"
      "\n"
      "--MIX\n"
      "Content-Type: text/html; charset=iso-8859-1\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "<p>Buy cheap watches for =A35</p>\n"
      "--MIX\n"
      "Content-Type: image/gif; name=\"a.gif\"\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "R0lGODlhAQABAHNlY3JldGltYWdlcGF5bG9hZA==\n"
      "--MIX\n"
      "Content-Type: application/pdf\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "JVBERi0xLjQgcGRmcGF5bG9hZHRva2Vu\n"
      "--MIX--\n");
  EXPECT_EQ(m.body,
            "Buy cheap watches for \xC2\xA3"
            "5\n");
}

TEST(Message, PartsWithoutContentTypeAreText) {
  const Message m = ParseMessage(
      "Content-Type: multipart/mixed; boundary=B\n"
      "\n"
      "--B\n"
      "\n"
      "no headers at all\n"
      "--B\n"
      "Content-Disposition: inline\n"
      "\n"
      "only a disposition\n"
      "--B--\n");
  EXPECT_EQ(m.body, "no headers at all\nonly a disposition");
}

TEST(Message, QuotedPrintableSoftBreaksAndBadEscapes) {
  const Message m = ParseMessage(
      "Content-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: Quoted-Printable\n"
      "\n"
      "This is a long line that was wra=\n"
      "pped, caf=C3=A9 costs 5=3D5, bad =ZZ escape, trailing=  \n"
      "next line\n");
  EXPECT_EQ(m.body,
            "This is a long line that was wrapped, caf\xC3\xA9 costs 5=5, bad =ZZ escape, "
            "trailingnext line\n");
}

TEST(Message, Windows1252BodyIsConvertedToUtf8) {
  const Message m = ParseMessage(
      "Content-Type: text/plain; charset=\"Windows-1252\"\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "=80100 =93quoted=94 na=EFve\n");
  EXPECT_EQ(m.body,
            "\xE2\x82\xAC"
            "100 \xE2\x80\x9Cquoted\xE2\x80\x9D na\xC3\xAFve\n");
}

TEST(Message, Base64BodyToleratesGarbageAndMissingPadding) {
  const Message m = ParseMessage(
      "Content-Type: text/plain\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "SGVsbG8sIGJh*c2U2NCB3b3Js\n"
      "ZCEKU2Vjb25kIGxpbmUu\n");
  EXPECT_EQ(m.body, "Hello, base64 world!\nSecond line.");
  EXPECT_EQ(ParseMessage("Content-Transfer-Encoding: base64\n\nSGVsbG8").body, "Hello");
}

TEST(Message, HtmlIsReducedToTextWithUrls) {
  const Message m = ParseMessage(
      "Content-Type: text/html\n"
      "\n"
      "<html><head><title>Ignored title</title><style>.a{color:red}</style></head>\n"
      "<body><!-- hidden comment --><script type=\"text/javascript\">var x = \"<b>\";</script>\n"
      "<p>Hello&nbsp;there &amp; welcome&#33; &#x263A; &#8364;5 &#150; &unknown; AT&T "
      "caf&eacute; Vi&shy;agra</p>\n"
      "<a href=\"http://example.com/buy?a=1&amp;b=2\">Click <b>here</b></a>"
      "<img alt=\"x > y\" src='https://img.example.net/x.png'>\n"
      "<a href=\"mailto:x@example.com\">mail</a><A HREF=HTTP://Upper.example.com>up</A>\n"
      "Line<br>break<br/>again</body></html>\n");
  EXPECT_FALSE(Has(m.body, "Ignored"));
  EXPECT_FALSE(Has(m.body, "color"));
  EXPECT_FALSE(Has(m.body, "hidden"));
  EXPECT_FALSE(Has(m.body, "var x"));
  EXPECT_FALSE(Has(m.body, "mailto"));
  EXPECT_FALSE(Has(m.body, "x > y"));
  EXPECT_TRUE(Has(m.body,
                  "Hello there & welcome! \xE2\x98\xBA \xE2\x82\xAC"
                  "5 \xE2\x80\x93 &unknown; AT&T caf\xC3\xA9 Viagra\n"));
  EXPECT_TRUE(Has(m.body, "\nhttp://example.com/buy?a=1&b=2 Click here"));
  EXPECT_TRUE(Has(m.body, " https://img.example.net/x.png "));
  EXPECT_TRUE(Has(m.body, " HTTP://Upper.example.com up"));
  EXPECT_TRUE(Has(m.body, "Line\nbreak\nagain"));
}

TEST(Message, HtmlTagsBecomeSpacesAndBlockTagsNewlines) {
  EXPECT_EQ(ParseMessage("Content-Type: text/html\n\n<p>a</p><p>b</p>").body, "a\nb\n");
  EXPECT_EQ(ParseMessage("Content-Type: text/html\n\nV<b>i</b>agra").body, "Viagra");
}

TEST(Message, UnterminatedHtmlConsumesTheRest) {
  const std::string prefix = "Content-Type: text/html\n\nbefore";
  for (std::string_view tail :
       {"<!-- never closed text", "<a href=\"http://x.example text", "<script>alert(1) text",
        "<div class=x text", "<style>p{} text", "<head><title>text", "<!DOCTYPE text"}) {
    const Message m = ParseMessage(prefix + std::string(tail));
    EXPECT_TRUE(Has(m.body, "before")) << tail;
    EXPECT_FALSE(Has(m.body, "text")) << tail;
  }
  EXPECT_EQ(ParseMessage(prefix + " a < b and c<").body, "before a < b and c<");
}

TEST(Message, HeadWithoutCloseEndsAtBody) {
  const Message m = ParseMessage("<html><head><title>t</title><body>visible</body></html>");
  EXPECT_EQ(m.body, "visible\n");
}

TEST(Message, ManyHeadsStayLinear) {
  std::string raw = "<html>";
  for (int i = 0; i < 20000; ++i) {
    raw += "<head>h<body>b";
  }
  raw += "</head>";
  const Message m = ParseMessage(raw);  // quadratic would take seconds here
  EXPECT_TRUE(Has(m.body, "b"));
  EXPECT_FALSE(Has(m.body, "h"));
}

TEST(Message, TypedPlainTextIsNotSniffedForHtml) {
  EXPECT_EQ(ParseMessage("Content-Type: text/plain\n\n<html>literal</html>").body,
            "<html>literal</html>");
}

TEST(Message, NestedMultipart) {
  const Message m = ParseMessage(
      "Content-Type: multipart/mixed; boundary=b\n"
      "\n"
      "--b\n"
      "Content-Type: multipart/alternative; boundary=b2\n"
      "\n"
      "--b2\n"
      "Content-Type: text/plain\n"
      "\n"
      "nested plain\n"
      "--b2\n"
      "Content-Type: text/html\n"
      "\n"
      "<p>nested html</p>\n"
      "--b2--\n"
      "\n"
      "--b\n"
      "Content-Type: text/plain; name=notes.txt\n"
      "Content-Disposition: attachment\n"
      "\n"
      "attached notes\n"
      "--b\n"
      "Content-Type: image/jpeg\n"
      "\n"
      "JFIF binary\n"
      "--b--\n");
  EXPECT_EQ(m.body, "nested plain\nattached notes");
}

TEST(Message, MessageRfc822IsRecursedInto) {
  const Message m = ParseMessage(
      "Subject: fwd\n"
      "Content-Type: multipart/mixed; boundary=M\n"
      "\n"
      "--M\n"
      "Content-Type: text/plain\n"
      "\n"
      "outer text\n"
      "--M\n"
      "Content-Type: message/rfc822\n"
      "\n"
      "From: x@example.com\n"
      "Subject: =?utf-8?q?inner_subject?=\n"
      "Content-Type: text/plain\n"
      "\n"
      "inner body\n"
      "--M--\n");
  EXPECT_EQ(m.subject, "fwd");
  EXPECT_EQ(m.body, "outer text\ninner subject\ninner body");
}

TEST(Message, MissingClosingBoundaryEndsLastPartAtEndOfInput) {
  const Message m = ParseMessage(
      "Content-Type: multipart/mixed; boundary=B\n"
      "\n"
      "--B\n"
      "Content-Type: text/plain\n"
      "\n"
      "first part\n"
      "--B\n"
      "\n"
      "second part\n");
  EXPECT_EQ(m.body, "first part\nsecond part\n");
}

TEST(Message, MultipartWithoutDelimitersOrBoundaryIsText) {
  EXPECT_EQ(ParseMessage("Content-Type: multipart/mixed; boundary=B\n\njust text\n").body,
            "just text\n");
  EXPECT_EQ(ParseMessage("Content-Type: multipart/mixed\n\n<html>just <b>html</b>").body,
            "just html");
}

TEST(Message, LongerBoundaryIsNotADelimiter) {
  const Message m = ParseMessage(
      "Content-Type: multipart/mixed; boundary=b\n"
      "\n"
      "--b\n"
      "\n"
      "one\n"
      "--b2\n"
      "still one\n"
      "--b \t\n"
      "\n"
      "two\n"
      "--b--trailing junk\n"
      "epilogue\n");
  EXPECT_EQ(m.body, "one\n--b2\nstill one\ntwo");
}

TEST(Message, CrlfLineEndings) {
  const Message m =
      ParseMessage(Crlf("Subject: crlf\n"
                        " folded\n"
                        "Content-Type: multipart/alternative; boundary=\"X\"\n"
                        "\n"
                        "--X\n"
                        "Content-Type: text/plain\n"
                        "Content-Transfer-Encoding: quoted-printable\n"
                        "\n"
                        "line one=\n"
                        " continued\n"
                        "line two\n"
                        "--X--\n"));
  EXPECT_TRUE(m.had_headers);
  EXPECT_EQ(m.subject, "crlf folded");
  EXPECT_EQ(m.body, "line one continued\nline two");
  EXPECT_EQ(ParseMessage("Subject: enron\r\nbody\r\nmore\r\n").body, "body\nmore\n");
}

TEST(Message, ComplexMessage) {
  const Message m = ParseMessage(kComplex);
  EXPECT_TRUE(m.had_headers);
  EXPECT_EQ(m.subject, "Caf\xC3\xA9 cr\xC3\xA8me and caf\xC3\xA9 deals");
  EXPECT_TRUE(Has(m.body, "Cheap caf\xC3\xA9 deals, softbreak here"));
  EXPECT_FALSE(Has(m.body, "alternative"));
  EXPECT_TRUE(Has(m.body, "\nhttp://spam.example.com/buy?a=1&b=2 click \xE2\x82\xAC here"));
  EXPECT_FALSE(Has(m.body, "bad()"));
  EXPECT_FALSE(Has(m.body, "secretimage"));
  EXPECT_FALSE(Has(m.body, "R0lGOD"));
  EXPECT_FALSE(Has(m.body, "ignore"));
  EXPECT_TRUE(Has(m.body, "forwarded one\nforwarded body"));
  EXPECT_EQ(m.body.find('\r'), std::string::npos);
}

TEST(Message, PartsAreDecodedByTheirDeclaredCharset) {
  const Message m = ParseMessage(
      "Subject: x\n"
      "Content-Type: multipart/mixed; boundary=b\n"
      "\n"
      "--b\n"
      "Content-Type: text/plain; charset=koi8-r\n"
      "Content-Transfer-Encoding: 8bit\n"
      "\n"
      "\xD0\xD2\xC9\xD7\xC5\xD4\n"
      "--b\n"
      "Content-Type: text/plain; charset=utf-16\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "//5HAHIA/ADfAGUAIACsIA==\n"
      "--b\n"
      "Content-Type: text/html; charset=gb2312\n"
      "\n"
      "<p>\xD6\xD0\xCE\xC4</p>\n"
      "--b\n"
      "Content-Type: text/plain\n"
      "\n"
      "undeclared caf\xE9\n"
      "--b--\n");
  EXPECT_EQ(m.body,
            "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82\nGr\xC3\xBC\xC3\x9F"
            "e \xE2\x82\xAC\n\xE4\xB8\xAD\xE6\x96\x87\n\nundeclared caf\xC3\xA9");
}

// What a JSON client sends: each byte of the file as the code point of the same value.
std::string Latin1ToUtf8(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80) {
      out.push_back(c);
    } else {
      out.push_back(static_cast<char>(0xC0 | (b >> 6)));
      out.push_back(static_cast<char>(0x80 | (b & 0x3F)));
    }
  }
  return out;
}

void ExpectSameMessage(const Message& a, const Message& b) {
  EXPECT_EQ(a.subject, b.subject);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.body, b.body);
}

TEST(Message, BytesAndTheirLatin1DecodingParseTheSame) {
  const std::string raws[] = {
      // Enron style: windows-1252 bytes, no charset anywhere.
      "Subject: caf\xE9 \x93"
      "deal\x94\nprices in \x80 and \xA3, don\x92t wait\n",
      // A declared koi8-r part and a windows-1252 encoded-word.
      "Subject: =?windows-1252?Q?=80?= \xE9\nContent-Type: text/plain; charset=koi8-r\n\n"
      "\xD0\xD2\xC9\xD7\xC5\xD4 \xC1\n",
      // A UTF-8 file: valid UTF-8 stays UTF-8 either way.
      "Subject: caf\xC3\xA9\n\nna\xC3\xAFve \xE2\x82\xAC \xC2\xA9\n",
      // A NUL byte.
      std::string("Subject: a\0b\n\nnul\0\xE9\n", 20),
  };
  for (const std::string& raw : raws) {
    SCOPED_TRACE(raw);
    ExpectSameMessage(ParseMessage(raw), ParseMessage(Latin1ToUtf8(raw)));
  }
  const Message m = ParseMessage(raws[0]);
  EXPECT_EQ(m.subject,
            "caf\xC3\xA9 \xE2\x80\x9C"
            "deal\xE2\x80\x9D");
  EXPECT_EQ(m.body, "prices in \xE2\x82\xAC and \xC2\xA3, don\xE2\x80\x99t wait\n");
}

TEST(Message, TextAClientDecodedAlreadyIsNotDecodedTwice) {
  // The client decoded the koi8-r part and sends Unicode: the literal part is valid UTF-8,
  // and is taken as it is.
  const Message raw = ParseMessage(
      "Subject: x\nContent-Type: text/plain; charset=koi8-r\n\n\xD0\xD2\xC9\xD7\xC5\xD4\n");
  const Message decoded = ParseMessage(
      "Subject: x\nContent-Type: text/plain; charset=koi8-r\n\n"
      "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82\n");
  ExpectSameMessage(raw, decoded);
  // A windows-1252 file decoded by windows-1252 (not Latin-1) gives the same text too.
  ExpectSameMessage(ParseMessage("Subject: \x93hi\x94\n\n\x80 5\n"),
                    ParseMessage("Subject: \xE2\x80\x9Chi\xE2\x80\x9D\n\n\xE2\x82\xAC 5\n"));
  // So does decomposed text (NFC).
  ExpectSameMessage(ParseMessage("Subject: cafe\xCC\x81\n\nna\xC3\xAFve"),
                    ParseMessage("Subject: caf\xC3\xA9\n\nnai\xCC\x88ve"));
}

TEST(Message, ParseSubjectReadsAValueAsTheHeader) {
  EXPECT_EQ(ParseSubject("=?koi8-r?B?wdLC?= caf\xE9"), "\xD0\xB0\xD1\x80\xD0\xB1 caf\xC3\xA9");
  EXPECT_EQ(ParseSubject("caf\xC3\xA9"), "caf\xC3\xA9");  // Latin-1-decoded \xE9: the same
  EXPECT_EQ(ParseSubject(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(Message, NulBytesAreKept) {
  const std::string raw("Subject: a\0b\nbody\0with nul\n", 27);
  const Message m = ParseMessage(raw);
  EXPECT_EQ(m.subject, std::string("a\0b", 3));
  EXPECT_EQ(m.body, std::string("body\0with nul\n", 14));
}

// Each level: a text part "level<i> text" and a multipart holding the next level.
std::string NestedMessage(int levels) {
  std::string head;
  std::vector<std::string> closings;
  for (int i = 0; i < levels; ++i) {
    const std::string b = "bnd" + std::to_string(i);
    head.append("Content-Type: multipart/mixed; boundary=").append(b).append("\n\n--").append(b);
    head.append("\nContent-Type: text/plain\n\nlevel").append(std::to_string(i));
    head.append(" text\n--").append(b).append("\n");
    closings.push_back("\n--" + b + "--\n");
  }
  head.append("Content-Type: text/plain\n\ndeepest text\n");
  for (auto it = closings.rbegin(); it != closings.rend(); ++it) {
    head.append(*it);
  }
  return head;
}

TEST(Message, NestingBeyondTheLimitIsIgnored) {
  const Message m = ParseMessage(NestedMessage(20));
  EXPECT_TRUE(Has(m.body, "level0 text"));
  EXPECT_TRUE(Has(m.body, "level7 text"));
  EXPECT_FALSE(Has(m.body, "level8 text"));
  EXPECT_FALSE(Has(m.body, "deepest"));
  EXPECT_TRUE(Has(ParseMessage(NestedMessage(3)).body, "deepest text"));
  // Very deep input must not blow the stack.
  EXPECT_TRUE(Has(ParseMessage(NestedMessage(20000)).body, "level7 text"));
}

TEST(Message, DeeplyNestedForwardsAreBounded) {
  std::string raw;
  for (int i = 0; i < 10000; ++i) {
    raw += "Subject: s" + std::to_string(i) + "\nContent-Type: message/rfc822\n\n";
  }
  raw += "bottom\n";
  const Message m = ParseMessage(raw);
  EXPECT_EQ(m.subject, "s0");
  EXPECT_TRUE(Has(m.body, "s8"));
  EXPECT_FALSE(Has(m.body, "s9"));
  EXPECT_FALSE(Has(m.body, "bottom"));
}

TEST(Message, AtMost256PartsAreRead) {
  std::string raw = "Content-Type: multipart/mixed; boundary=p\n\n";
  for (int i = 0; i < 1000; ++i) {
    raw += "--p\n\ntok" + std::to_string(i) + ".\n";
  }
  raw += "--p--\n";
  const Message m = ParseMessage(raw);
  EXPECT_TRUE(Has(m.body, "tok0."));
  EXPECT_TRUE(Has(m.body, "tok255."));
  EXPECT_FALSE(Has(m.body, "tok256."));
}

void ExpectBounded(std::string_view raw) {
  const Message m = ParseMessage(raw);
  // Each input byte reaches the output at most once, as at most 3 UTF-8 bytes (windows-1252),
  // plus a joining newline per part.
  EXPECT_LE(m.body.size(), 4 * raw.size() + 4);
  EXPECT_LE(m.subject.size(), 3 * raw.size());
}

TEST(Message, EveryPrefixOfAComplexMessage) {
  for (size_t n = 0; n <= kComplex.size(); ++n) {
    ExpectBounded(kComplex.substr(0, n));
  }
  const std::string crlf = Crlf(kComplex);
  for (size_t n = 0; n <= crlf.size(); ++n) {
    ExpectBounded(std::string_view(crlf).substr(0, n));
  }
}

TEST(Message, RandomBytes) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 2000);
  for (int round = 0; round < 2000; ++round) {
    std::string raw(static_cast<size_t>(length(rng)), '\0');
    for (char& c : raw) {
      c = static_cast<char>(byte(rng));
    }
    ExpectBounded(raw);
  }
}

TEST(Message, RandomMimeSoup) {
  // Fragments that exercise every parser state, shuffled into mostly-broken messages.
  const std::vector<std::string_view> pieces = {
      "\n",
      "\r\n",
      " ",
      "\t",
      "Subject: ",
      "Content-Type: multipart/mixed; boundary=b\n",
      "Content-Type: multipart/alternative; boundary=\"b\"\n",
      "Content-Type: text/html\n",
      "Content-Type: message/rfc822\n",
      "Content-Type: text/plain; charset=windows-1252\n",
      "Content-Transfer-Encoding: base64\n",
      "Content-Transfer-Encoding: quoted-printable\n",
      "--b\n",
      "--b--\n",
      "=?utf-8?B?",
      "=?iso-8859-1?Q?",
      "?=",
      "=",
      "=4",
      "=C3=A9",
      "\x80",
      "\xFF",
      std::string_view("\0", 1),
      "<",
      ">",
      "<!--",
      "-->",
      "<script>",
      "</script>",
      "<head>",
      "<body>",
      "<a href=\"http://x.example/",
      "\"",
      "'",
      "&",
      "&#",
      "&#x",
      "&amp;",
      ";",
      "12",
      "word",
      "SGVsbG8",
      "<html>",
      "<br>",
      "<p",
      "From x\n"};
  std::mt19937 rng(54321);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1);
  std::uniform_int_distribution<int> count(0, 300);
  for (int round = 0; round < 3000; ++round) {
    std::string raw;
    for (int i = count(rng); i > 0; --i) {
      raw += pieces[pick(rng)];
    }
    ExpectBounded(raw);
  }
}

TEST(Message, FromHeaderIsKeptDecoded) {
  const Message m =
      ParseMessage("From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.de>\nSubject: hi\n\nbody\n");
  EXPECT_EQ(m.from, "J\xC3\xBCrgen <juergen@example.de>");
  EXPECT_EQ(m.subject, "hi");
  EXPECT_EQ(ParseMessage("Subject: no sender\nbody\n").from, "");
}

}  // namespace
}  // namespace evo::spam
