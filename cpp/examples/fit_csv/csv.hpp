// A small CSV reader: a header row of column names, then one record per line.
// RFC 4180 quoting (fields in double quotes may hold commas, line breaks and
// doubled quotes), LF, CRLF or CR line ends, a UTF-8 byte-order mark, blank
// lines skipped, spaces around unquoted fields ignored. A column is numeric
// when every non-missing field parses completely as a number; missing fields
// are empty, NA or NaN.
#pragma once

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace csv {

/// One column: its name, its fields as text, and, for numeric columns, the
/// values (NaN where missing).
struct Column {
  std::string name;
  std::vector<std::string> text;
  bool numeric = false;
  std::vector<double> values;
  std::vector<bool> missing;
};

/// A table read from a CSV file: columns of equal length.
struct Table {
  std::vector<Column> columns;
  std::size_t nrows = 0;

  /// The column called `name`; throws std::runtime_error naming the columns there are.
  const Column& column(const std::string& name) const {
    for (const auto& c : columns)
      if (c.name == name) return c;
    std::string names;
    for (const auto& c : columns) names += (names.empty() ? "" : ", ") + c.name;
    throw std::runtime_error("no column named '" + name + "' (the columns are: " + names + ")");
  }
};

namespace detail {

inline std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  const auto b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

inline bool is_missing(const std::string& s) { return s.empty() || s == "NA" || s == "NaN"; }

inline bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  const char* begin = s.c_str();
  char* end = nullptr;
  out = std::strtod(begin, &end);
  return end == begin + s.size();
}

// Split the whole text into records of fields. `line` of each record is the
// 1-based line where it starts, for error messages.
inline void split(const std::string& text, std::vector<std::vector<std::string>>& records,
                  std::vector<std::size_t>& lines) {
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, was_quoted = false, record_empty = true;
  std::size_t line = 1, record_line = 1;
  auto end_field = [&] {
    record.push_back(was_quoted ? field : trim(field));
    field.clear();
    was_quoted = false;
  };
  auto end_record = [&] {
    end_field();
    if (!(record_empty && record.size() == 1 && record[0].empty())) {
      records.push_back(record);
      lines.push_back(record_line);
    }
    record.clear();
    record_empty = true;
  };
  std::size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (record_empty) record_line = line;
    if (c == '"' && trim(field).empty()) {
      field.clear();
      quoted = was_quoted = true;
      record_empty = false;
    } else if (c == ',') {
      end_field();
      record_empty = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
      ++line;
    } else {
      if (was_quoted && c != ' ' && c != '\t')
        throw std::runtime_error("line " + std::to_string(line) + ": text after a closing quote");
      if (!was_quoted) field += c;
      if (c != ' ' && c != '\t') record_empty = false;
    }
  }
  if (quoted) throw std::runtime_error("line " + std::to_string(record_line) + ": unterminated quoted field");
  if (!record_empty || !record.empty() || !field.empty()) end_record();
}

}  // namespace detail

/// Read `path`. Throws std::runtime_error when the file cannot be read, has no
/// header, repeats a column name or has a record with the wrong number of fields.
inline Table read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open '" + path + "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::vector<std::vector<std::string>> records;
  std::vector<std::size_t> lines;
  try {
    detail::split(buffer.str(), records, lines);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("'" + path + "' " + e.what());
  }
  if (records.empty()) throw std::runtime_error("'" + path + "' is empty (a header row is needed)");

  Table t;
  for (const auto& name : records[0]) {
    if (name.empty()) throw std::runtime_error("'" + path + "': the header has an empty column name");
    for (const auto& c : t.columns)
      if (c.name == name) throw std::runtime_error("'" + path + "': column name '" + name + "' appears twice");
    t.columns.push_back({name, {}, false, {}, {}});
  }
  const std::size_t ncol = t.columns.size();
  for (std::size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != ncol)
      throw std::runtime_error("'" + path + "' line " + std::to_string(lines[r]) + ": " +
                               std::to_string(records[r].size()) + " fields, the header has " +
                               std::to_string(ncol));
    for (std::size_t j = 0; j < ncol; ++j) t.columns[j].text.push_back(records[r][j]);
  }
  t.nrows = records.size() - 1;
  if (t.nrows == 0) throw std::runtime_error("'" + path + "' has a header but no data rows");

  for (auto& c : t.columns) {
    c.values.assign(t.nrows, std::nan(""));
    c.missing.assign(t.nrows, false);
    bool numeric = true, any = false;
    for (std::size_t r = 0; r < t.nrows; ++r) {
      if (detail::is_missing(c.text[r])) {
        c.missing[r] = true;
        continue;
      }
      any = true;
      if (!detail::parse_number(c.text[r], c.values[r])) numeric = false;
    }
    c.numeric = numeric && any;
    if (!c.numeric) c.values.assign(t.nrows, std::nan(""));
  }
  return t;
}

}  // namespace csv
