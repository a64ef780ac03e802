// JsonObject: builds one compact JSON object, keys in insertion order. Non-finite numbers
// are written as null. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace verdict::bench {

class JsonObject {
 public:
  JsonObject& Number(std::string_view key, double value);
  JsonObject& Integer(std::string_view key, int64_t value);
  JsonObject& Bool(std::string_view key, bool value);
  JsonObject& String(std::string_view key, std::string_view value);
  JsonObject& Null(std::string_view key);
  JsonObject& Object(std::string_view key, const JsonObject& value);

  // "{...}".
  std::string ToString() const { return "{" + body_ + "}"; }

 private:
  void Key(std::string_view key);

  std::string body_;
};

// `text` as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view text);

// The number after "key": in a flat one-line JSON object (what the anchor scripts print);
// NaN for null, absent or not a number.
double FlatJsonNumber(const std::string& line, const std::string& key);

}  // namespace verdict::bench
