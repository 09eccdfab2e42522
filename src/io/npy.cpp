// NumPy .npy reader and writer. Layout: "\x93NUMPY", version (major, minor), header length (u16 LE
// for 1.0, u32 LE for 2.0/3.0), a Python dict literal {'descr': '<f4', 'fortran_order': False,
// 'shape': (4, 16), } padded with spaces and '\n' so the data starts 64-aligned, then the raw data.
// Arrays keep the shape stored in the file; there are no model dimensions here.
#include "retort/npy.h"

#include <torch/torch.h>

#include <cctype>
#include <cstring>
#include <map>

#include "io/file_io.h"
#include "retort/error.h"

namespace retort {
namespace {

struct NpyType {
  const char* descr;  // without the byte-order character
  c10::ScalarType scalar_type;
};

constexpr NpyType kTypes[] = {
    {"b1", c10::ScalarType::Bool},  {"u1", c10::ScalarType::Byte},  {"i1", c10::ScalarType::Char},
    {"i2", c10::ScalarType::Short}, {"i4", c10::ScalarType::Int},   {"i8", c10::ScalarType::Long},
    {"f2", c10::ScalarType::Half},  {"f4", c10::ScalarType::Float}, {"f8", c10::ScalarType::Double},
};

// The values of the header dict, kept as the few kinds .npy headers use.
struct HeaderValue {
  enum Kind { kString, kBool, kTuple } kind = kString;
  std::string text;
  bool flag = false;
  std::vector<int64_t> ints;
};

// A parser for the Python dict literal numpy writes (repr of a dict of str, bool and int tuples).
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  std::map<std::string, HeaderValue> parse_dict() {
    std::map<std::string, HeaderValue> dict;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = parse_string();
      expect(':');
      dict[key] = parse_value();
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != '}') bad("expected ',' or '}'");
    }
    ++pos_;
    skip_space();
    if (pos_ != s_.size()) bad("text after the dict");
    return dict;
  }

 private:
  [[noreturn]] void bad(const char* what) {
    fail(path_, ": malformed .npy header (", what, " at character ", pos_, "): ", s_);
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) bad("unexpected character");
    ++pos_;
  }
  std::string parse_string() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad("expected a string");
    const auto end = s_.find(quote, pos_ + 1);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  int64_t parse_int() {
    skip_space();
    const std::size_t start = pos_;
    int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s_[pos_] - '0', &v))
        bad("huge integer");
      ++pos_;
    }
    if (pos_ == start) bad("expected a non-negative integer");
    if (peek() == 'L') ++pos_;  // Python 2's long suffix
    return v;
  }
  HeaderValue parse_value() {
    skip_space();
    HeaderValue v;
    if (peek() == '\'' || peek() == '"') {
      v.kind = HeaderValue::kString;
      v.text = parse_string();
    } else if (s_.compare(pos_, 4, "True") == 0 || s_.compare(pos_, 5, "False") == 0) {
      v.kind = HeaderValue::kBool;
      v.flag = s_[pos_] == 'T';
      pos_ += v.flag ? 4 : 5;
    } else if (peek() == '(') {
      v.kind = HeaderValue::kTuple;
      ++pos_;
      while (true) {
        skip_space();
        if (peek() == ')') break;
        v.ints.push_back(parse_int());
        skip_space();
        if (peek() == ',')
          ++pos_;
        else if (peek() != ')')
          bad("expected ',' or ')' in shape");
      }
      ++pos_;
    } else {
      bad("unsupported value");
    }
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

}  // namespace

at::Tensor load_npy(const std::string& path) {
  const io::MappedFile file(path);
  const uint8_t* p = file.data();
  const std::size_t size = file.size();
  check(size >= 10 && std::memcmp(p, "\x93NUMPY", 6) == 0, path, ": not a .npy file (no \\x93NUMPY magic)");
  const int major = p[6];
  check(major >= 1 && major <= 3, path, ": unsupported .npy format version ", major, ".", int(p[7]));
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  check(size >= 8 + len_bytes, path, ": truncated .npy header");
  std::size_t header_len = 0;
  for (std::size_t i = 0; i < len_bytes; ++i) header_len |= static_cast<std::size_t>(p[8 + i]) << (8 * i);
  const std::size_t data_start = 8 + len_bytes + header_len;
  check(data_start <= size, path, ": truncated .npy header (", header_len, " bytes announced, ",
        size - 8 - len_bytes, " present)");
  std::string header(reinterpret_cast<const char*>(p + 8 + len_bytes), header_len);
  while (!header.empty() && std::isspace(static_cast<unsigned char>(header.back()))) header.pop_back();
  header = io::printable(header);  // only for messages' sake: numpy headers are plain ASCII
  const auto dict = HeaderParser(header, path).parse_dict();

  const auto descr = dict.find("descr");
  const auto fortran = dict.find("fortran_order");
  const auto shape = dict.find("shape");
  check(descr != dict.end() && descr->second.kind == HeaderValue::kString, path,
        ": .npy header has no 'descr' string: ", header);
  check(fortran != dict.end() && fortran->second.kind == HeaderValue::kBool, path,
        ": .npy header has no 'fortran_order' flag: ", header);
  check(shape != dict.end() && shape->second.kind == HeaderValue::kTuple, path,
        ": .npy header has no 'shape' tuple: ", header);
  check(!fortran->second.flag, path, ": Fortran-order arrays are not supported (save with C order)");

  const std::string& d = descr->second.text;
  const NpyType* type = nullptr;
  for (const auto& t : kTypes)
    if (d.size() == 3 && d.compare(1, 2, t.descr) == 0) type = &t;
  check(type != nullptr, path, ": unsupported dtype '", d, "'");
  const std::size_t itemsize = c10::elementSize(type->scalar_type);
  const char order = d[0];
  check(order == '<' || order == '|' || (itemsize == 1 && (order == '>' || order == '=')), path,
        order == '>' ? ": big-endian data ('" : ": unsupported byte order ('", d, "')");

  uint64_t numel = 1;
  for (int64_t dim : shape->second.ints) {
    check(!__builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel), path, ": shape overflows");
  }
  uint64_t nbytes = 0;
  check(!__builtin_mul_overflow(numel, itemsize, &nbytes), path, ": shape overflows");
  const uint64_t present = size - data_start;
  check(present >= nbytes, path, ": truncated: shape needs ", nbytes, " bytes of data, file has ", present);
  check(present == nbytes, path, ": ", present - nbytes, " unexpected bytes after the array data");

  // (shape of the file)
  torch::Tensor out = torch::empty(shape->second.ints, torch::TensorOptions().dtype(type->scalar_type));
  if (nbytes > 0) std::memcpy(out.data_ptr(), p + data_start, nbytes);
  if (type->scalar_type == c10::ScalarType::Bool) {
    const uint8_t* b = p + data_start;
    for (uint64_t i = 0; i < nbytes; ++i) check(b[i] <= 1, path, ": bool element ", i, " is ", int(b[i]));
  }
  return out;
}

void save_npy(const std::string& path, const at::Tensor& tensor) {
  check(tensor.defined(), path, ": cannot save an undefined tensor");
  const NpyType* type = nullptr;
  for (const auto& t : kTypes)
    if (t.scalar_type == tensor.scalar_type()) type = &t;
  check(type != nullptr, path, ": dtype ", tensor.scalar_type(), " has no NumPy equivalent");
  const torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();

  // What numpy.lib.format writes: sorted keys, repr() values, spare room to grow the first axis.
  std::string shape = "(";
  for (int64_t i = 0; i < data.dim(); ++i) shape += (i ? ", " : "") + std::to_string(data.size(i));
  shape += data.dim() == 1 ? ",)" : ")";
  const char order = c10::elementSize(type->scalar_type) == 1 ? '|' : '<';
  std::string header = std::string("{'descr': '") + order + type->descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  if (data.dim() > 0) header.append(21 - std::to_string(data.size(0)).size(), ' ');
  const std::size_t hlen = header.size() + 1;  // + '\n'
  // Version 1.0 unless the padded header overflows its u16 length; numpy pads 1..64 bytes, never 0.
  const bool v1 = hlen + 64 - (10 + hlen) % 64 <= 65535;
  const std::size_t pad = 64 - ((v1 ? 10 : 12) + hlen) % 64;
  header.append(pad, ' ');
  header += '\n';

  std::string head = "\x93NUMPY";
  head += v1 ? '\x01' : '\x02';
  head += '\0';
  for (std::size_t i = 0; i < (v1 ? 2u : 4u); ++i)
    head += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  io::AtomicWriter out(path);
  out.write(head);
  out.write(header);
  if (data.nbytes() > 0) out.write(data.data_ptr(), data.nbytes());
  out.commit();
}

}  // namespace retort
