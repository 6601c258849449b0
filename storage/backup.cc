#include "storage/backup.h"

#include <fcntl.h>
#include <leveldb/env.h>
#include <leveldb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/keyed_hash.h"
#include "storage/codec.h"
#include "storage/db_snapshot.h"
#include "storage/erasure.h"
#include "storage/keyring.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/leveldb_util.h"
#include "storage/options.h"
#include "storage/record_store.h"
#include "storage/store.h"
#include "storage/subjects.h"

namespace custos::backup {
namespace {

namespace fs = std::filesystem;

constexpr char kManifest[] = "manifest";
constexpr char kRecordsFile[] = "records.dump";
constexpr char kKeystoreFile[] = "keystore.sealed";
constexpr std::string_view kManifestMagic = "custos-backup";
constexpr std::string_view kDumpMagic = "CSTBKD01";
constexpr std::string_view kSealedMagic = "CSTBKS01";
// Kits of version 1 said nothing of when they were written; they are
// refused (docs/decisions.md, "Restore kits say when they were written").
constexpr std::string_view kKitMagicV1 = "CSTKIT01";
constexpr std::string_view kKitMagic = "CSTKIT02";
constexpr std::string_view kKitAd = "custos restore kit v2";
constexpr std::string_view kKitBackupPrefix = "backup/";
// The kit's first frame: when it was written (8 bytes, microseconds).
constexpr std::string_view kKitWritten = "written";
constexpr uint32_t kEndOfEntries = 0xFFFFFFFF;
constexpr size_t kChunkSize = size_t{1} << 20;
// Bounds on what a parser allocates for one length it read from a file.
constexpr uint32_t kMaxKeySize = 1 << 16;
constexpr uint32_t kMaxValueSize = 1 << 26;
constexpr uint32_t kMaxSealedChunk = kChunkSize + crypto::kSealOverhead;
constexpr size_t kImportBatchBytes = 4 << 20;

void AppendFrame(std::string& out, std::string_view key,
                 std::string_view value) {
  AppendBigEndian32(out, static_cast<uint32_t>(key.size()));
  out.append(key);
  AppendBigEndian32(out, static_cast<uint32_t>(value.size()));
  out.append(value);
}

std::string Frame(std::string_view key, std::string_view value) {
  std::string out;
  out.reserve(8 + key.size() + value.size());
  AppendFrame(out, key, value);
  return out;
}

std::string EndFrame(uint64_t entries) {
  std::string out;
  AppendBigEndian32(out, kEndOfEntries);
  AppendBigEndian64(out, entries);
  return out;
}

std::vector<uint8_t> ChunkAd(std::string_view backup_id, std::string_view file,
                             uint64_t index, bool last) {
  // The backup id has a fixed length; the file name keeps chunks of one
  // file from passing for chunks of the other.
  std::string ad("custos backup ");
  ad.append(backup_id).append(" ").append(file);
  AppendBigEndian64(ad, index);
  ad.push_back(last ? 1 : 0);
  return std::vector<uint8_t>(ad.begin(), ad.end());
}

// A file written once, synced and checksummed as it goes.
class FileWriter {
 public:
  static Result<FileWriter> Create(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 && errno == EEXIST) {
      return Fail(Status::AlreadyExists(path.filename().string() +
                                        " exists: it is written only as a "
                                        "new file"));
    }
    if (fd < 0) {
      return Fail(Status::Internal("cannot create backup file " +
                                   path.filename().string()));
    }
    return FileWriter(fd, path.filename().string());
  }
  FileWriter(FileWriter&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        name_(std::move(other.name_)),
        size_(other.size_) {}
  ~FileWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::string_view bytes) {
    hasher_.Update(bytes);
    size_ += bytes.size();
    buffer_.append(bytes);
    return buffer_.size() >= kChunkSize ? Flush() : Status::Ok();
  }

  // Flushes, fsyncs and closes; the file as the manifest lists it.
  Result<BackupFile> Finish() {
    CUSTOS_RETURN_IF_ERROR(Flush());
    if (::fsync(fd_) != 0 || ::close(std::exchange(fd_, -1)) != 0) {
      return Fail(Status::Internal("cannot sync backup file " + name_));
    }
    return BackupFile{name_, size_, crypto::ToHex(hasher_.Final())};
  }

 private:
  FileWriter(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}

  Status Flush() {
    size_t done = 0;
    while (done < buffer_.size()) {
      const ssize_t n =
          ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::Internal("cannot write backup file " + name_);
      }
      done += static_cast<size_t>(n);
    }
    buffer_.clear();
    return Status::Ok();
  }

  int fd_;
  std::string name_;
  uint64_t size_ = 0;
  std::string buffer_;
  crypto::Hasher hasher_;
};

// Seals a stream in chunks under a backup key (see the header).
class ChunkSealer {
 public:
  ChunkSealer(FileWriter& out, const crypto::SecretKey& key,
              std::string backup_id, std::string_view file)
      : out_(out), key_(key), backup_id_(std::move(backup_id)), file_(file) {}

  Status Append(std::string_view bytes) {
    plain_.append(bytes);
    while (plain_.size() > kChunkSize) {
      CUSTOS_RETURN_IF_ERROR(
          Emit(std::string_view(plain_).substr(0, kChunkSize), false));
      plain_.erase(0, kChunkSize);
    }
    return Status::Ok();
  }
  Status Finish() { return Emit(plain_, true); }
  ~ChunkSealer() { crypto::Wipe(AsWritable(plain_)); }

 private:
  static std::span<uint8_t> AsWritable(std::string& s) {
    return {reinterpret_cast<uint8_t*>(s.data()), s.size()};
  }
  Status Emit(std::string_view plain, bool last) {
    const std::vector<uint8_t> sealed =
        crypto::Seal(key_, plain, ChunkAd(backup_id_, file_, index_++, last));
    std::string length;
    AppendBigEndian32(length, static_cast<uint32_t>(sealed.size()));
    CUSTOS_RETURN_IF_ERROR(out_.Append(length));
    return out_.Append(AsStringView(sealed));
  }

  FileWriter& out_;
  const crypto::SecretKey& key_;
  const std::string backup_id_;
  const std::string_view file_;
  std::string plain_;
  uint64_t index_ = 0;
};

// Reads frames from a byte source (see the header's framing).
class FrameReader {
 public:
  // `read(n, out)` appends exactly n bytes to out, or returns false.
  using Source = std::function<bool(size_t n, std::string& out)>;
  FrameReader(Source source, std::string what)
      : source_(std::move(source)), what_(std::move(what)) {}

  Status ReadMagic(std::string_view magic) {
    std::string got;
    if (!source_(magic.size(), got) || got != magic) return Malformed();
    return Status::Ok();
  }
  // The next entry, or nullopt at the end frame (whose count is checked).
  Result<std::optional<std::pair<std::string, std::string>>> Next() {
    std::string len;
    if (!source_(4, len)) return Fail(Malformed());
    const uint32_t key_size = ReadBigEndian32(len);
    if (key_size == kEndOfEntries) {
      std::string count;
      if (!source_(8, count) || ReadBigEndian64(count) != entries_) {
        return Fail(Malformed());
      }
      return std::optional<std::pair<std::string, std::string>>();
    }
    std::pair<std::string, std::string> entry;
    len.clear();
    if (key_size > kMaxKeySize || !source_(key_size, entry.first) ||
        !source_(4, len)) {
      return Fail(Malformed());
    }
    const uint32_t value_size = ReadBigEndian32(len);
    if (value_size > kMaxValueSize || !source_(value_size, entry.second)) {
      return Fail(Malformed());
    }
    ++entries_;
    return std::optional(std::move(entry));
  }
  Status Malformed() const {
    return Status::DataLoss("backup file " + what_ +
                            " is truncated or malformed");
  }

 private:
  Source source_;
  std::string what_;
  uint64_t entries_ = 0;
};

FrameReader::Source StreamSource(std::istream& in) {
  return [&in](size_t n, std::string& out) {
    const size_t at = out.size();
    out.resize(at + n);
    in.read(out.data() + at, static_cast<std::streamsize>(n));
    return static_cast<size_t>(in.gcount()) == n;
  };
}

// The sealed chunks of a sealed backup file, each as its sealed bytes.
class ChunkReader {
 public:
  ChunkReader(std::istream& in, std::string_view file) : in_(in), file_(file) {}
  Status ReadMagic() {
    std::string got;
    if (!StreamSource(in_)(kSealedMagic.size(), got) || got != kSealedMagic) {
      return Malformed();
    }
    return Status::Ok();
  }
  // The next chunk, or nullopt at the end of the file.
  Result<std::optional<std::string>> Next() {
    std::string len;
    if (in_.peek() == std::char_traits<char>::eof()) {
      return std::optional<std::string>();
    }
    std::string chunk;
    if (!StreamSource(in_)(4, len) || ReadBigEndian32(len) > kMaxSealedChunk ||
        ReadBigEndian32(len) < crypto::kSealOverhead ||
        !StreamSource(in_)(ReadBigEndian32(len), chunk)) {
      return Fail(Malformed());
    }
    return std::optional(std::move(chunk));
  }
  Status Malformed() const {
    return Status::DataLoss(std::string("backup file ")
                                .append(file_)
                                .append(" is truncated or malformed"));
  }

 private:
  std::istream& in_;
  std::string_view file_;
};

// The plaintext of a sealed backup file, opened chunk by chunk as it is
// read (one chunk ahead, to know which is the last), as a FrameReader
// source. A chunk that fails to open ends the stream; status() says so.
class ChunkOpener {
 public:
  ChunkOpener(const fs::path& dir, std::string_view file, std::string backup_id,
              const crypto::SecretKey& key)
      : in_(dir / file, std::ios::binary),
        chunks_(in_, file),
        file_(file),
        backup_id_(std::move(backup_id)),
        key_(key) {}
  ~ChunkOpener() { crypto::Wipe(AsWritable(plain_)); }

  // Reads the magic and the first chunk. DataLoss for a malformed file.
  Status Start() {
    CUSTOS_RETURN_IF_ERROR(chunks_.ReadMagic());
    auto first = chunks_.Next();
    if (!first) return first.error();
    if (!*first) return chunks_.Malformed();
    ahead_ = std::move(*first);
    return Status::Ok();
  }
  // Appends exactly n plaintext bytes to out, or returns false.
  bool Read(size_t n, std::string& out) {
    while (plain_.size() - at_ < n) {
      if (!Refill()) return false;
    }
    out.append(plain_, at_, n);
    at_ += n;
    return true;
  }
  FrameReader::Source AsSource() {
    return [this](size_t n, std::string& out) { return Read(n, out); };
  }
  // Every chunk opened and every byte read.
  bool AtEnd() const { return !ahead_ && at_ == plain_.size(); }
  const Status& status() const { return status_; }

 private:
  static std::span<uint8_t> AsWritable(std::string& s) {
    return {reinterpret_cast<uint8_t*>(s.data()), s.size()};
  }
  bool Refill() {
    if (!ahead_ || !status_.ok()) return false;
    auto after = chunks_.Next();
    if (!after) {
      status_ = after.error();
      return false;
    }
    const bool last = !*after;
    auto opened = crypto::Open(key_, AsBytes(*ahead_),
                               ChunkAd(backup_id_, file_, index_++, last));
    ahead_ = std::move(*after);
    if (!opened) {
      status_ = Status::DataLoss(std::string("backup file ")
                                     .append(file_)
                                     .append(" fails to decrypt"));
      return false;
    }
    // The consumed plaintext goes, wiped.
    crypto::Wipe(AsWritable(plain_).first(at_));
    plain_.erase(0, at_);
    at_ = 0;
    plain_.append(AsStringView(*opened));
    crypto::Wipe(*opened);
    return true;
  }

  std::ifstream in_;
  ChunkReader chunks_;
  std::string_view file_;
  std::string backup_id_;
  const crypto::SecretKey& key_;
  std::optional<std::string> ahead_;
  std::string plain_;
  size_t at_ = 0;
  uint64_t index_ = 0;
  Status status_;
};

// Reads every entry of a sealed dump, calling each(key, value). DataLoss
// for a chunk that fails to open or a malformed dump.
Status ReadSealedDump(
    const fs::path& dir, std::string_view file, const std::string& backup_id,
    const crypto::SecretKey& key,
    const std::function<Status(std::string&, std::string&)>& each) {
  ChunkOpener opener(dir, file, backup_id, key);
  CUSTOS_RETURN_IF_ERROR(opener.Start());
  FrameReader frames(opener.AsSource(), std::string(file));
  auto failed = [&](const Status& s) {
    return opener.status().ok() ? s : opener.status();
  };
  Status magic = frames.ReadMagic(kDumpMagic);
  if (!magic.ok()) return failed(magic);
  while (true) {
    auto next = frames.Next();
    if (!next) return failed(next.error());
    if (!*next) break;
    CUSTOS_RETURN_IF_ERROR(each((*next)->first, (*next)->second));
  }
  if (!opener.AtEnd()) return frames.Malformed();
  return Status::Ok();
}

std::string ManifestChecksum(std::string_view body) {
  crypto::Hasher h;
  h.Update(body);
  return crypto::ToHex(h.Final());
}

std::string NewBackupId() {
  // 16 random bytes, from a fresh random key's.
  const crypto::SecretKey random = crypto::SecretKey::Generate();
  return std::string("b").append(crypto::ToHex(random.bytes().subspan(0, 16)));
}

struct Manifest {
  uint32_t version = 0;
  std::string backup_id;
  int64_t created_micros = 0;
  std::vector<BackupFile> files;
};

Result<Manifest> ReadManifest(const fs::path& dir) {
  std::ifstream in(dir / kManifest, std::ios::binary);
  if (!in) return Fail(Status::NotFound("the backup has no manifest"));
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  auto corrupt = [] { return Status::DataLoss("corrupt backup manifest"); };
  const size_t end = text.rfind("end ");
  if (end == std::string::npos || (end != 0 && text[end - 1] != '\n')) {
    return Fail(corrupt());
  }
  std::istringstream lines(text);
  Manifest m;
  std::string word;
  if (!(lines >> word) || word != kManifestMagic || !(lines >> m.version)) {
    return Fail(corrupt());
  }
  if (m.version != kFormatVersion) {
    return Fail(Status::FailedPrecondition(
        "backup format version " + std::to_string(m.version) +
        " is not supported (this build reads version " +
        std::to_string(kFormatVersion) + ")"));
  }
  std::string checksum;
  std::istringstream tail(text.substr(end + 4));
  if (!(tail >> checksum) ||
      checksum != ManifestChecksum(std::string_view(text).substr(0, end))) {
    return Fail(Status::DataLoss("the backup manifest fails its checksum"));
  }
  while (lines >> word && word != "end") {
    if (word == "id") {
      lines >> m.backup_id;
    } else if (word == "created_micros") {
      lines >> m.created_micros;
    } else if (word == "file") {
      BackupFile f;
      lines >> f.name >> f.size >> f.blake2b_hex;
      m.files.push_back(std::move(f));
    } else {
      return Fail(corrupt());
    }
    if (!lines) return Fail(corrupt());
  }
  auto listed = [&](std::string_view name) {
    return std::any_of(m.files.begin(), m.files.end(),
                       [&](const BackupFile& f) { return f.name == name; });
  };
  if (m.backup_id.empty() || !listed(kRecordsFile) || !listed(kKeystoreFile)) {
    return Fail(corrupt());
  }
  return m;
}

// Decrypts keystore.sealed under `key` into its entries.
Result<std::vector<std::pair<std::string, std::string>>> OpenKeystoreDump(
    const fs::path& dir, const std::string& backup_id,
    const crypto::SecretKey& key) {
  std::vector<std::pair<std::string, std::string>> entries;
  CUSTOS_RETURN_IF_ERROR(ReadSealedDump(
      dir, kKeystoreFile, backup_id, key, [&](std::string& k, std::string& v) {
        entries.emplace_back(std::move(k), std::move(v));
        return Status::Ok();
      }));
  return entries;
}

// The kit's contents: when it was written, backup keys by id (with their
// creation times), and the raw ledger entries.
struct Kit {
  Timestamp written;
  std::map<std::string, crypto::SecretKey> backup_keys;
  std::map<std::string, Timestamp> backup_created;
  std::vector<std::pair<std::string, std::string>> ledger;
};

Result<Kit> ReadKit(const std::string& path, const crypto::SecretKey& master) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(Status::NotFound("no restore kit at " + path));
  std::stringstream all;
  all << in.rdbuf();
  const std::string bytes = all.str();
  if (bytes.starts_with(kKitMagicV1)) {
    return Fail(Status::FailedPrecondition(
        "this restore kit was written by an earlier version of Custos and "
        "does not say when it was written; write a new one (custos backup "
        "kit)"));
  }
  if (!bytes.starts_with(kKitMagic)) {
    return Fail(Status::DataLoss("the restore kit is corrupt"));
  }
  const crypto::SecretKey ring_key = Keyring::RingKey(master);
  auto plain = crypto::Open(ring_key, AsBytes(bytes).subspan(kKitMagic.size()),
                            AsBytes(kKitAd));
  if (!plain) {
    return Fail(Status::FailedPrecondition(
        "the master key does not open this restore kit"));
  }
  size_t at = 0;
  FrameReader frames(
      [&](size_t n, std::string& out) {
        if (plain->size() - at < n) return false;
        out.append(AsStringView(*plain).substr(at, n));
        at += n;
        return true;
      },
      "restore kit");
  Kit kit;
  bool dated = false;
  Status failure = frames.ReadMagic(kDumpMagic);
  while (failure.ok()) {
    auto next = frames.Next();
    if (!next) {
      failure = next.error();
      break;
    }
    if (!*next) break;
    auto& [key, value] = **next;
    if (!dated) {  // The first frame says when the kit was written.
      if (key != kKitWritten || value.size() != 8) {
        failure = Status::DataLoss("the restore kit is corrupt");
        break;
      }
      kit.written = FromMicros(static_cast<int64_t>(ReadBigEndian64(value)));
      dated = true;
    } else if (key.starts_with(kKitBackupPrefix)) {
      auto k = crypto::SecretKey::FromBytes(
          AsBytes(value).subspan(std::min<size_t>(value.size(), 8)));
      if (value.size() != 8 + crypto::SecretKey::kSize || !k) {
        failure = Status::DataLoss("the restore kit is corrupt");
      } else {
        const std::string id = key.substr(kKitBackupPrefix.size());
        kit.backup_created.emplace(
            id, FromMicros(static_cast<int64_t>(ReadBigEndian64(value))));
        kit.backup_keys.emplace(id, std::move(*k));
      }
      crypto::Wipe({reinterpret_cast<uint8_t*>(value.data()), value.size()});
    } else {
      kit.ledger.push_back(std::move(**next));
    }
  }
  crypto::Wipe(*plain);
  if (failure.ok() && !dated) {
    failure = Status::DataLoss("the restore kit is corrupt");
  }
  if (!failure.ok()) return Fail(failure);
  return kit;
}

// Writes `entries` (from `next`) into a new LevelDB at `path` in large
// unsynced batches, the last one synced, and compacts it whole so the
// restored data sits in tables, not in a log.
// Opens a database the import makes, or refuses (FailedPrecondition) one
// that holds anything: the check of the directory before is not enough,
// since a custosd started on it since could have made a store there. The
// handle holds the database's LOCK until it is dropped.
Result<std::unique_ptr<leveldb::DB>> OpenImportDb(const std::string& path,
                                                  leveldb::Env* env,
                                                  const LevelDbTuning& tuning) {
  auto db = OpenLevelDb(path, /*create_if_missing=*/true, env, tuning);
  if (!db) return Fail(db.error());
  {
    std::unique_ptr<leveldb::Iterator> it(
        (*db)->NewIterator(leveldb::ReadOptions()));
    it->SeekToFirst();
    if (it->Valid() || !it->status().ok()) {
      return Fail(Status::FailedPrecondition(
          "the restore's data directory already holds a store"));
    }
  }
  return db;
}

// Writes what `fill` puts in each batch (false: that batch is the last,
// written synchronously), then compacts.
Status ImportDb(leveldb::DB& db,
                const std::function<Result<bool>(leveldb::WriteBatch&)>& fill) {
  while (true) {
    leveldb::WriteBatch batch;
    auto more = fill(batch);
    if (!more) return more.error();
    leveldb::WriteOptions wo;
    wo.sync = !*more;
    CUSTOS_RETURN_IF_ERROR(
        FromLevelDb(db.Write(wo, &batch), "restoring a backup"));
    if (!*more) break;
  }
  db.CompactRange(nullptr, nullptr);
  return Status::Ok();
}

}  // namespace

// ---- Write ------------------------------------------------------------------

Result<BackupReport> Write(Store& store, Keystore& keystore,
                           const std::string& dir, Timestamp now,
                           const WorkProgressFn& progress) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Fail(Status::Internal("cannot create the backup directory"));
  if (!fs::is_empty(dir, ec) || ec) {
    return Fail(Status::AlreadyExists("the backup directory is not empty"));
  }
  BackupReport report;
  report.backup_id = NewBackupId();
  report.created = now;
  // The key goes into the keyring (durably) before anything is sealed
  // under it: a crash after this leaves a key no backup uses, destroyed on
  // schedule like the rest.
  auto key = keystore.AddBackupKey(report.backup_id, now);
  if (!key) return Fail(key.error());

  // One instant: no records write (its lock) and no keystore key write
  // (its exclusive key lock) while the two snapshots are taken. A record
  // is never written before its subject's key, so every record in the
  // records snapshot has its key in the keystore snapshot (or the ledger
  // entry of its shred).
  std::optional<DbSnapshot> records;
  std::optional<Keystore::Snapshot> keys;
  {
    WriteLock lock = store.Lock();
    // Nothing in the snapshot that a power loss could still take from the
    // live store: a shred's records side (and its history event) is
    // applied and not synced, and were it lost, Recover would write the
    // event again, differently, while the backup kept the lost one. Costs
    // a sync only when an applied write is not durable yet. On failure no
    // backup is written (the key added above goes on schedule).
    CUSTOS_RETURN_IF_ERROR(store.SyncApplied(lock));
    store.RunSnapshotHook();
    keys.emplace(keystore.TakeSnapshot([&] { records.emplace(store.db()); }));
  }

  // records.dump, sealed under the backup key like the keystore: personal
  // data in it is sealed under subject keys, but its keys and the rest
  // (blind indexes, subject ids, record indexes, attributes, history
  // headers) link a person to their records, and must become unreadable
  // with the backup key.
  {
    auto out = FileWriter::Create(fs::path(dir) / kRecordsFile);
    if (!out) return Fail(out.error());
    CUSTOS_RETURN_IF_ERROR(out->Append(kSealedMagic));
    ChunkSealer sealer(*out, *key, report.backup_id, kRecordsFile);
    CUSTOS_RETURN_IF_ERROR(sealer.Append(kDumpMagic));
    ReportProgress(progress, "records", "entries", 0);
    CUSTOS_RETURN_IF_ERROR(records->ForEach([&](std::string_view k,
                                                std::string_view v) {
      ReportProgress(progress, "records", "entries", ++report.records_entries);
      return sealer.Append(Frame(k, v));
    }));
    ReportProgress(progress, "records", "entries", report.records_entries,
                   report.records_entries, /*last=*/true);
    CUSTOS_RETURN_IF_ERROR(sealer.Append(EndFrame(report.records_entries)));
    CUSTOS_RETURN_IF_ERROR(sealer.Finish());
    auto file = out->Finish();
    if (!file) return Fail(file.error());
    report.files.push_back(std::move(*file));
  }
  records.reset();

  // keystore.sealed: the keystore, with the keyring stripped of backup
  // keys, sealed under this backup's key.
  {
    auto out = FileWriter::Create(fs::path(dir) / kKeystoreFile);
    if (!out) return Fail(out.error());
    CUSTOS_RETURN_IF_ERROR(out->Append(kSealedMagic));
    ChunkSealer sealer(*out, *key, report.backup_id, kKeystoreFile);
    CUSTOS_RETURN_IF_ERROR(sealer.Append(kDumpMagic));
    ReportProgress(progress, "keystore", "entries", 0);
    CUSTOS_RETURN_IF_ERROR(
        keys->db.ForEach([&](std::string_view k, std::string_view v) {
          ReportProgress(progress, "keystore", "entries",
                         ++report.keystore_entries);
          return sealer.Append(Frame(k, k == "m:keyring" ? keys->keyring : v));
        }));
    ReportProgress(progress, "keystore", "entries", report.keystore_entries,
                   report.keystore_entries, /*last=*/true);
    CUSTOS_RETURN_IF_ERROR(sealer.Append(EndFrame(report.keystore_entries)));
    CUSTOS_RETURN_IF_ERROR(sealer.Finish());
    auto file = out->Finish();
    if (!file) return Fail(file.error());
    report.files.push_back(std::move(*file));
  }
  keys.reset();

  // The manifest last: a backup without one is incomplete.
  ReportProgress(progress, "manifest", "", 0);
  std::string body = std::string(kManifestMagic)
                         .append(" ")
                         .append(std::to_string(kFormatVersion))
                         .append("\nid ")
                         .append(report.backup_id)
                         .append("\ncreated_micros ")
                         .append(std::to_string(ToMicros(now)))
                         .append("\n");
  for (const BackupFile& f : report.files) {
    body.append("file ")
        .append(f.name)
        .append(" ")
        .append(std::to_string(f.size))
        .append(" ")
        .append(f.blake2b_hex)
        .append("\n");
  }
  const std::string checksum = ManifestChecksum(body);
  body.append("end ").append(checksum).append("\n");
  auto manifest = FileWriter::Create(fs::path(dir) / kManifest);
  if (!manifest) return Fail(manifest.error());
  CUSTOS_RETURN_IF_ERROR(manifest->Append(body));
  auto done = manifest->Finish();
  if (!done) return Fail(done.error());
  // The directory entries themselves, and the directory's own entry in
  // its parent: a backup reported written survives a power loss.
  fs::path parent = fs::path(dir).parent_path();
  if (parent.empty()) parent = ".";
  for (const fs::path& d : {fs::path(dir), parent}) {
    const int dir_fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY);
    const bool synced = dir_fd >= 0 && ::fsync(dir_fd) == 0;
    if (dir_fd >= 0) ::close(dir_fd);
    if (!synced) {
      return Fail(Status::Internal(
          "the backup's directory entries could not be made durable"));
    }
  }
  return report;
}

// ---- Verify -----------------------------------------------------------------

Result<BackupVerification> Verify(const std::string& dir,
                                  const WorkProgressFn& progress) {
  auto manifest = ReadManifest(dir);
  if (!manifest) return Fail(manifest.error());
  BackupVerification out;
  out.format_version = manifest->version;
  out.backup_id = manifest->backup_id;
  out.created = FromMicros(manifest->created_micros);
  out.files = manifest->files;
  uint64_t total_bytes = 0;
  for (const BackupFile& f : manifest->files) total_bytes += f.size;
  uint64_t checked = 0;
  ReportProgress(progress, "checksums", "bytes", 0, total_bytes);
  for (const BackupFile& f : manifest->files) {
    const fs::path path = fs::path(dir) / f.name;
    std::ifstream in(path, std::ios::binary);
    if (f.name.find('/') != std::string::npos || !in) {
      return Fail(Status::NotFound("backup file " + f.name + " is missing"));
    }
    crypto::Hasher hasher;
    uint64_t size = 0;
    std::string buffer(kChunkSize, '\0');
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const auto n = static_cast<size_t>(in.gcount());
      hasher.Update(std::string_view(buffer).substr(0, n));
      size += n;
      checked += n;
      // Per chunk read (kChunkSize bytes), not per kProgressEvery bytes.
      if (progress != nullptr && n != 0) {
        progress(WorkProgress{"checksums", "bytes", checked, total_bytes});
      }
    }
    if (size != f.size || crypto::ToHex(hasher.Final()) != f.blake2b_hex) {
      return Fail(Status::DataLoss("backup file " + f.name +
                                   " does not match its checksum"));
    }
  }
  // Without the key only the chunk structure can be checked; what the
  // chunks hold is authenticated (and parsed) at restore.
  uint64_t chunks_read = 0;
  ReportProgress(progress, "structure", "chunks", 0);
  for (auto [file, count] : {std::pair{kRecordsFile, &out.records_chunks},
                             std::pair{kKeystoreFile, &out.keystore_chunks}}) {
    std::ifstream in(fs::path(dir) / file, std::ios::binary);
    ChunkReader chunks(in, file);
    CUSTOS_RETURN_IF_ERROR(chunks.ReadMagic());
    while (true) {
      auto next = chunks.Next();
      if (!next) return Fail(next.error());
      if (!*next) break;
      ++*count;
      ReportProgress(progress, "structure", "chunks", ++chunks_read);
    }
    if (*count == 0) return Fail(chunks.Malformed());
  }
  ReportProgress(progress, "structure", "chunks", chunks_read, chunks_read,
                 /*last=*/true);
  return out;
}

// ---- Restore kit ------------------------------------------------------------

Status WriteKit(Keystore& keystore, const std::string& path, Timestamp now,
                std::chrono::microseconds retention) {
  // The kit's plaintext holds every backup key in the clear, so it is
  // built in one buffer sized exactly beforehand and wiped after sealing:
  // no temporary holds a key, and no reallocation frees a copy of the
  // first keys unwiped (hostile review, helper-95). The ledger (record ids
  // and times, nothing secret) is framed first, apart, to know its size.
  std::string ledger;
  uint64_t entries = 0;
  CUSTOS_RETURN_IF_ERROR(
      keystore.ScanLedger([&](std::string_view k, std::string_view v) {
        AppendFrame(ledger, k, v);
        ++entries;
      }));
  const std::vector<Keystore::HeldBackupKey> keys = keystore.BackupKeys();
  // Only keys not yet past the retention: one the next sweep would destroy
  // must not outlive it in a kit (ExpireBackupKeys' cut-off).
  const Timestamp cutoff =
      now - std::chrono::duration_cast<Timestamp::duration>(retention);
  auto live = [&](const Keystore::HeldBackupKey& held) {
    return held.info.created > cutoff;
  };
  size_t size = kDumpMagic.size() + 4 + kKitWritten.size() + 4 + 8 +
                ledger.size() + EndFrame(0).size();
  for (const Keystore::HeldBackupKey& held : keys) {
    if (!live(held)) continue;
    size += 4 + kKitBackupPrefix.size() + held.info.backup_id.size() + 4 + 8 +
            held.key.bytes().size();
  }
  std::string plain;
  plain.reserve(size);
  const char* const buffer = plain.data();
  plain.append(kDumpMagic);
  AppendBigEndian32(plain, static_cast<uint32_t>(kKitWritten.size()));
  plain.append(kKitWritten);
  AppendBigEndian32(plain, 8);
  AppendBigEndian64(plain, static_cast<uint64_t>(ToMicros(now)));
  ++entries;
  for (const Keystore::HeldBackupKey& held : keys) {
    if (!live(held)) continue;
    // A frame (backup/<id>, created || key), written in place.
    const std::string name =
        std::string(kKitBackupPrefix) + held.info.backup_id;
    AppendBigEndian32(plain, static_cast<uint32_t>(name.size()));
    plain.append(name);
    AppendBigEndian32(plain,
                      static_cast<uint32_t>(8 + held.key.bytes().size()));
    AppendBigEndian64(plain,
                      static_cast<uint64_t>(ToMicros(held.info.created)));
    plain.append(AsStringView(held.key.bytes()));
    ++entries;
  }
  plain.append(ledger);
  plain.append(EndFrame(entries));
  if (plain.data() != buffer || plain.size() != size) {
    // Unreachable while the size above is right; a wrong one must not
    // pass silently with keys left in freed memory (the size is checked
    // too: spare capacity could hide a wrong sum).
    crypto::Wipe({reinterpret_cast<uint8_t*>(plain.data()), plain.size()});
    return Status::Internal("the restore kit outgrew its buffer");
  }
  const std::vector<uint8_t> sealed =
      keystore.SealUnderMasterKey(plain, AsBytes(kKitAd));
  crypto::Wipe({reinterpret_cast<uint8_t*>(plain.data()), plain.size()});
  auto out = FileWriter::Create(path);
  if (!out) return out.error();
  CUSTOS_RETURN_IF_ERROR(out->Append(kKitMagic));
  CUSTOS_RETURN_IF_ERROR(out->Append(AsStringView(sealed)));
  auto done = out->Finish();
  return done ? Status::Ok() : done.error();
}

Result<KitSummary> ReadKitSummary(const std::string& path,
                                  const crypto::SecretKey& master) {
  auto kit = ReadKit(path, master);
  if (!kit) return Fail(kit.error());
  KitSummary summary;
  summary.written = kit->written;
  summary.backup_keys = kit->backup_keys.size();
  summary.ledger_entries = kit->ledger.size();
  return summary;
}

// ---- Restore ----------------------------------------------------------------

Result<RestoreIntent> Import(const std::string& backup_dir,
                             const Options& options,
                             const crypto::SecretKey& master,
                             const std::string& kit_path,
                             std::string_view admin_id, Timestamp now) {
  auto verified = Verify(backup_dir);
  if (!verified) return Fail(verified.error());
  auto kit = ReadKit(kit_path, master);
  if (!kit) return Fail(kit.error());
  auto key = kit->backup_keys.find(verified->backup_id);
  // A kit written before the key expired still holds it: the key's age is
  // checked here too, against the restored store's retention.
  const Timestamp cutoff =
      now -
      std::chrono::duration_cast<Timestamp::duration>(options.backup_retention);
  if (key == kit->backup_keys.end() ||
      kit->backup_created.at(verified->backup_id) <= cutoff) {
    return Fail(Status::FailedPrecondition(
        "the key of this backup has expired (it is older than the backup "
        "retention) or is not in the restore kit: the backup cannot be "
        "restored"));
  }
  auto keystore_entries =
      OpenKeystoreDump(backup_dir, verified->backup_id, key->second);
  if (!keystore_entries) return Fail(keystore_entries.error());

  RestoreIntent intent;
  intent.admin_id = std::string(admin_id);
  intent.backup_id = verified->backup_id;
  // The kit's ledger: shreds by hash, record erasures by key, pruned
  // events by seq (each with the entry that named it).
  std::unordered_set<std::string> shredded_hashes;
  std::unordered_map<std::string, bool> erasures;  // "le:" key -> matched.
  std::map<uint64_t, bool> pruned;                 // seq -> in the backup.
  // Principal id -> its credential's latest change, from the ledger's
  // value (Keystore::LedgerCredentialValue): its time, and the new
  // credential hash or nothing for a revocation.
  std::unordered_map<std::string, Keystore::CredentialChange> credentials;
  std::unordered_set<std::string> backed_up_principals;
  // Deadline bucket keys destroyed ("lb:"), by key name ("~b" + hex).
  std::unordered_set<std::string> destroyed_buckets;
  for (const auto& [k, v] : kit->ledger) {
    if (k.starts_with(Keystore::kLedgerErasurePrefix)) {
      // Its MAC is checked once the keyring is open (PlanFromLedger).
      if (v.size() != 16 + crypto::kDigestSize) {
        return Fail(Status::DataLoss("corrupt ledger entry"));
      }
      erasures.emplace(k, false);
    } else if (k.starts_with(Keystore::kLedgerPrunePrefix)) {
      // Its MAC is checked once the keyring is open (below).
      auto seqs = Keystore::LedgerPrunedSeqs(nullptr, k, v);
      if (!seqs) return Fail(seqs.error());
      for (uint64_t seq : *seqs) pruned.emplace(seq, false);
    } else if (k.starts_with(Keystore::kLedgerCredentialPrefix)) {
      // Its MAC is checked once the keyring is open (below).
      auto change = Keystore::LedgerCredentialChange(nullptr, k, v);
      if (!change) return Fail(change.error());
      credentials.emplace(k.substr(Keystore::kLedgerCredentialPrefix.size()),
                          std::move(*change));
    } else if (k.starts_with(Keystore::kLedgerBucketPrefix)) {
      destroyed_buckets.insert(k.substr(Keystore::kLedgerBucketPrefix.size()));
    } else if (k.starts_with(Keystore::kLedgerShredPrefix)) {
      shredded_hashes.insert(k.substr(Keystore::kLedgerShredPrefix.size()));
    }
  }
  // A principal's stored form with the ledger's last change to its
  // credential applied: revoked, or its credential replaced.
  auto apply_credential = [&](codec::StoredPrincipal& p) {
    auto change = credentials.find(p.info.id);
    if (change == credentials.end()) return false;
    const std::string& new_hash = change->second.new_hash;
    if (new_hash.empty()) {
      p.info.revoked = true;
      if (p.revoked_at_micros == 0) {
        p.revoked_at_micros = change->second.at;
      }
    } else {
      p.credential_hash.assign(new_hash.begin(), new_hash.end());
    }
    return true;
  };

  // The backup's keyring, to compute ledger hashes.
  const std::string* sealed_keyring = nullptr;
  for (const auto& [k, v] : *keystore_entries) {
    if (k == "m:keyring") sealed_keyring = &v;
  }
  if (sealed_keyring == nullptr) {
    return Fail(Status::DataLoss("the backup's keystore has no keyring"));
  }
  auto keyring = Keyring::Open(*sealed_keyring, Keyring::RingKey(master));
  if (!keyring) return Fail(keyring.error());
  for (const auto& [k, v] : kit->ledger) {
    if (k.starts_with(Keystore::kLedgerPrunePrefix)) {
      auto seqs = Keystore::LedgerPrunedSeqs(&keyring->ledger(), k, v);
      if (!seqs) return Fail(seqs.error());
    } else if (k.starts_with(Keystore::kLedgerCredentialPrefix)) {
      // One copied from another principal's entry would give this one
      // that principal's token.
      auto change = Keystore::LedgerCredentialChange(&keyring->ledger(), k, v);
      if (!change) return Fail(change.error());
    }
  }

  const fs::path data(options.data_dir);
  std::error_code ec;
  if (fs::exists(data / "records", ec) || fs::exists(data / "keystore", ec)) {
    return Fail(Status::FailedPrecondition(
        "the restore's data directory already holds a store"));
  }

  // Pass 1 over the records, writing nothing: the restoring admin, the
  // subjects the ledger says were shredded, and which ledger erasures and
  // prunings name records and events of the backup.
  const std::string admin_key = keys::Principal(admin_id);
  std::optional<codec::StoredPrincipal> admin;
  std::unordered_set<std::string> shred_ids;
  // A legal hold in force when the backup was taken: records it held may
  // still be sealed in the backup under the key of a bucket the live store
  // destroyed after moving them (a hold's records leave their bucket only
  // when its hour ends), so no destroyed bucket key is left out; the
  // restored store's first sweep moves them and destroys the keys (a
  // review, helper-102).
  bool holds_in_force = false;
  CUSTOS_RETURN_IF_ERROR(ReadSealedDump(
      backup_dir, kRecordsFile, intent.backup_id, key->second,
      [&](std::string& k, std::string& v) -> Status {
        if (k.starts_with(keys::kPrincipalPrefix)) {
          backed_up_principals.insert(k.substr(keys::kPrincipalPrefix.size()));
        }
        if (k.starts_with(keys::kHoldPrefix)) {
          auto hold = codec::DecodeHold(v);
          if (!hold) return hold.error();
          if (!hold->released_at && hold->ends_at > verified->created) {
            holds_in_force = true;
          }
        }
        if (k == admin_key) {
          auto p = codec::DecodePrincipal(v);
          if (!p) return p.error();
          // As the backup holds it: an admin revoked since may still name
          // the restore (the restored store revokes it again), or a store
          // whose admins all changed since could not be restored at all.
          admin = std::move(*p);
        } else if (k.starts_with(keys::kRecordPrefix) &&
                   k.size() == keys::kRecordPrefix.size() + 8) {
          auto it = erasures.find(Keystore::LedgerErasureKey(
              keyring->ledger(), ReadBigEndian64(std::string_view(k).substr(
                                     keys::kRecordPrefix.size()))));
          if (it != erasures.end()) it->second = true;
        } else if (k.starts_with(keys::kEventPrefix) &&
                   k.size() == keys::kEventPrefix.size() + 8) {
          auto it = pruned.find(ReadBigEndian64(
              std::string_view(k).substr(keys::kEventPrefix.size())));
          if (it != pruned.end()) it->second = true;
        } else if (k.starts_with(keys::Subject(""))) {
          auto subject = codec::DecodeSubject(v);
          if (!subject) return subject.error();
          if (subject->shredded) return Status::Ok();
          auto index = Subjects::BlindIndexOf(*subject);
          if (!index) return index.error();
          const crypto::Digest hash =
              Keystore::LedgerShredHash(keyring->ledger(), *index, subject->id);
          if (shredded_hashes.contains(std::string(AsStringView(hash)))) {
            shred_ids.insert(subject->id);
          }
        }
        return Status::Ok();
      }));
  // Checked as Principals::RequireRole does, before anything is written.
  if (!admin || admin->info.revoked) {
    return Fail(Status::Unauthenticated("principal is unknown or revoked"));
  }
  if (!admin->info.HasRole(Role::kAdmin)) {
    return Fail(Status::PermissionDenied("this call needs the admin role"));
  }
  intent.subjects_shredded = shred_ids.size();

  // The ledger the restored store keeps: the kit's, without the erasures
  // and prunings of records and events the backup does not hold. Those
  // were created after the backup; the restored store hands their ids and
  // seqs out again, and a later restore from it must not erase the new
  // ones.
  std::vector<std::pair<std::string, std::string>> ledger;
  for (auto& [k, v] : kit->ledger) {
    if (k.starts_with(Keystore::kLedgerErasurePrefix)) {
      if (!erasures[k]) continue;
    } else if (k.starts_with(Keystore::kLedgerPrunePrefix)) {
      auto seqs = Keystore::LedgerPrunedSeqs(&keyring->ledger(), k, v);
      if (!seqs) return Fail(seqs.error());
      std::vector<uint64_t> kept;
      for (uint64_t seq : *seqs) {
        if (pruned[seq]) kept.push_back(seq);
      }
      if (kept.empty()) continue;
      std::string first(Keystore::kLedgerPrunePrefix);
      AppendBigEndian64(first, kept.front());
      std::string value =
          Keystore::LedgerPruneValue(keyring->ledger(), first, kept);
      ledger.emplace_back(std::move(first), std::move(value));
      continue;
    } else if (k.starts_with(Keystore::kLedgerCredentialPrefix)) {
      // A principal created after the backup: its id may be made again.
      if (!backed_up_principals.contains(
              k.substr(Keystore::kLedgerCredentialPrefix.size()))) {
        continue;
      }
    }
    ledger.emplace_back(std::move(k), std::move(v));
  }

  fs::create_directories(data, ec);
  // An import that fails from here on leaves nothing of itself: the
  // databases it made are removed, so that the directory can be restored
  // into again and no half-restored store, which Open would refuse for
  // ever, holds personal data outside any retention. (A crash leaves them:
  // Open refuses the incomplete intent, and the operator removes the
  // directory.) Only what it made and held: a database it could not open
  // or found written (another process's, a custosd started on the
  // directory meanwhile) is left alone.
  struct Undo {
    fs::path path;
    bool made = false;
    ~Undo() {
      if (!made) return;
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  };
  Undo undo_records{data / "records"};
  Undo undo_keystore{data / "keystore"};
  leveldb::Env* env =
      options.env != nullptr ? options.env : leveldb::Env::Default();
  // Both opened before anything is written and held to the end (declared
  // after the undos: closed before they remove anything): a custosd
  // started on the directory during the import can open neither, and so
  // cannot make a store of its own beside it (between the keystore's
  // import and the records' one it could, and the import's undo then
  // removed the databases under it).
  auto records_db =
      OpenImportDb(undo_records.path.string(), env, options.records_db);
  if (!records_db) return Fail(records_db.error());
  undo_records.made = true;
  auto keystore_db =
      OpenImportDb(undo_keystore.path.string(), env, LevelDbTuning());
  if (!keystore_db) return Fail(keystore_db.error());
  undo_keystore.made = true;

  // The keystore: the backup's, without the shredded subjects' keys and
  // the deadline bucket keys destroyed since (each witnessed in the
  // records, so VerifyErasure looks for it), with the live ledger merged
  // in.
  leveldb::WriteBatch witnesses;
  {
    size_t next = 0, ledger_next = 0;
    CUSTOS_RETURN_IF_ERROR(ImportDb(
        **keystore_db, [&](leveldb::WriteBatch& batch) -> Result<bool> {
          for (; next < keystore_entries->size() &&
                 batch.ApproximateSize() < kImportBatchBytes;
               ++next) {
            const auto& [k, v] = (*keystore_entries)[next];
            // The current key and the retiring one of a re-key the backup
            // caught midway; and the keys of deadline buckets destroyed
            // since the backup.
            if ((k.starts_with("k:") || k.starts_with("o:")) &&
                (shred_ids.contains(k.substr(2)) ||
                 (!holds_in_force &&
                  destroyed_buckets.contains(k.substr(2))))) {
              auto wrapped = codec::DecodeWrappedKey(v);
              if (!wrapped) return Fail(wrapped.error());
              Erasure::AddWitness(witnesses, wrapped->wrapped);
              continue;
            }
            batch.Put(k, v);
          }
          for (; ledger_next < ledger.size() &&
                 batch.ApproximateSize() < kImportBatchBytes;
               ++ledger_next) {
            batch.Put(ledger[ledger_next].first, ledger[ledger_next].second);
          }
          return next < keystore_entries->size() || ledger_next < ledger.size();
        }));
  }

  // Pass 2: the records, shredding the ledger's subjects as a shred's
  // intent does (storage/shredder.cc): marked, identifier cleared and
  // witnessed, blind index dropped, queued for CompleteShreds. The restore
  // intent goes into the first batch: LevelDB applies batches in order, so
  // whatever of the records a crash leaves comes with it, and Open
  // finishes the restore before it returns.
  {
    const int64_t now_micros = ToMicros(now);
    ChunkOpener opener(backup_dir, kRecordsFile, intent.backup_id, key->second);
    CUSTOS_RETURN_IF_ERROR(opener.Start());
    FrameReader frames(opener.AsSource(), kRecordsFile);
    auto failed = [&](const Status& s) {
      return opener.status().ok() ? s : opener.status();
    };
    if (Status s = frames.ReadMagic(kDumpMagic); !s.ok()) {
      return Fail(failed(s));
    }
    bool first = true;
    CUSTOS_RETURN_IF_ERROR(
        ImportDb(**records_db, [&](leveldb::WriteBatch& batch) -> Result<bool> {
          if (first) {
            batch.Put(ToSlice(kRestoreIntentKey), EncodeRestoreIntent(intent));
            batch.Append(witnesses);
            first = false;
          }
          while (batch.ApproximateSize() < kImportBatchBytes) {
            auto next = frames.Next();
            if (!next) return Fail(failed(next.error()));
            if (!*next) {
              if (!opener.AtEnd()) return Fail(frames.Malformed());
              // In the last write, the synced one: the import is whole.
              intent.complete = true;
              batch.Put(ToSlice(kRestoreIntentKey),
                        EncodeRestoreIntent(intent));
              return false;
            }
            auto& [k, v] = **next;
            if (k == kRestoreIntentKey) continue;
            if (k.starts_with(keys::BlindIndex("")) && shred_ids.contains(v)) {
              continue;
            }
            // Credentials the ledger changed: the old entry dropped, the
            // principal revoked or given its new one (below).
            if (k.starts_with(keys::Credential("")) &&
                credentials.contains(v)) {
              continue;
            }
            if (k.starts_with(keys::kPrincipalPrefix)) {
              auto principal = codec::DecodePrincipal(v);
              if (!principal) return Fail(principal.error());
              if (apply_credential(*principal)) {
                batch.Put(k, codec::EncodePrincipal(*principal));
                if (!principal->info.revoked) {
                  batch.Put(keys::Credential(
                                AsStringView(principal->credential_hash)),
                            principal->info.id);
                }
                continue;
              }
            }
            if (k.starts_with(keys::Subject("")) &&
                shred_ids.contains(k.substr(keys::Subject("").size()))) {
              auto subject = codec::DecodeSubject(v);
              if (!subject) return Fail(subject.error());
              Erasure::AddWitness(batch, subject->sealed_identifier);
              subject->sealed_identifier.clear();
              subject->shredded = true;
              subject->shredded_at_micros = now_micros;
              batch.Put(k, codec::EncodeSubject(*subject));
              batch.Put(keys::ShredQueue(subject->id), "");
              continue;
            }
            batch.Put(k, v);
          }
          return true;
        }));
  }
  undo_records.made = false;
  undo_keystore.made = false;
  return intent;
}

std::string EncodeRestoreIntent(const RestoreIntent& intent) {
  std::string out = Frame(intent.admin_id, intent.backup_id);
  AppendBigEndian64(out, intent.subjects_shredded);
  out.push_back(intent.complete ? 1 : 0);
  return out;
}

Result<RestoreIntent> DecodeRestoreIntent(std::string_view value) {
  size_t at = 0;
  FrameReader frames(
      [&](size_t n, std::string& out) {
        if (value.size() - at < n) return false;
        out.append(value.substr(at, n));
        at += n;
        return true;
      },
      "restore intent");
  auto entry = frames.Next();
  if (!entry || !*entry || value.size() - at != 9 || value.back() > 1) {
    return Fail(Status::DataLoss("corrupt restore intent"));
  }
  RestoreIntent intent;
  intent.admin_id = std::move((*entry)->first);
  intent.backup_id = std::move((*entry)->second);
  intent.subjects_shredded = ReadBigEndian64(value.substr(at));
  intent.complete = value.back() == 1;
  return intent;
}

Result<RestorePlan> PlanFromLedger(Keystore& keystore) {
  RestorePlan plan;
  Status corrupt;
  CUSTOS_RETURN_IF_ERROR(keystore.ScanLedger([&](std::string_view k,
                                                 std::string_view v) {
    if (k.starts_with(Keystore::kLedgerErasurePrefix)) {
      auto at = Keystore::LedgerErasureTime(keystore.keyring().ledger(), k, v);
      if (!at) {
        corrupt = at.error();
        return;
      }
      plan.erased_records.emplace(std::string(k), at->erased_at);
    } else if (k.starts_with(Keystore::kLedgerPrunePrefix)) {
      auto seqs =
          Keystore::LedgerPrunedSeqs(&keystore.keyring().ledger(), k, v);
      if (!seqs) {
        corrupt = seqs.error();
        return;
      }
      plan.pruned_events.insert(seqs->begin(), seqs->end());
    }
  }));
  if (!corrupt.ok()) return Fail(corrupt);
  return plan;
}

Result<size_t> Reapply(Store& store, RecordStore& record_store,
                       Keystore& keystore, const RestorePlan& plan,
                       Timestamp now) {
  const int64_t now_micros = ToMicros(now);
  size_t erased = 0;
  if (!plan.erased_records.empty()) {
    std::vector<std::pair<uint64_t, int64_t>> due;
    CUSTOS_RETURN_IF_ERROR(store.Scan(
        keys::kRecordPrefix, {}, [&](std::string_view k, std::string_view) {
          const uint64_t id =
              ReadBigEndian64(k.substr(keys::kRecordPrefix.size()));
          auto it = plan.erased_records.find(
              Keystore::LedgerErasureKey(keystore.keyring().ledger(), id));
          if (it != plan.erased_records.end()) due.emplace_back(id, it->second);
          return true;
        }));
    WriteLock lock = store.Lock();
    Store::Ticket last;
    for (const auto& [id, at] : due) {
      auto record = record_store.Read(id);
      if (!record) return Fail(record.error());
      if (record->state == RecordState::kErased) continue;
      leveldb::WriteBatch batch;
      Erasure::EraseContents(*record, at, now_micros, batch);
      record->updated_at_micros = now_micros;
      CUSTOS_RETURN_IF_ERROR(record_store.Put(lock, batch, *record));
      auto ticket = store.Apply(lock, batch, {}, "restoring an erasure");
      if (!ticket) return Fail(ticket.error());
      last = *ticket;
      ++erased;
    }
    lock.Unlock();
    CUSTOS_RETURN_IF_ERROR(store.WaitDurable(last));
  }
  if (!plan.pruned_events.empty()) {
    WriteLock lock = store.Lock();
    uint64_t after = 0;
    Store::Ticket last;
    do {
      leveldb::WriteBatch batch;
      auto pruned = store.history().Prune(
          [&](const EventHeader& h) {
            return plan.pruned_events.contains(h.seq);
          },
          10000, after, batch);
      if (!pruned) return Fail(pruned.error());
      // An event the ledger says was pruned that cannot be: the restored
      // store would hold history the live one no longer does.
      for (uint64_t seq : pruned->unauthenticated) {
        if (plan.pruned_events.contains(seq)) {
          return Fail(Status::DataLoss(
              "history event " + std::to_string(seq) +
              ", pruned in the live store, does not authenticate in the "
              "backup; the restore cannot prune it"));
        }
      }
      after = pruned->next_after_seq;
      auto ticket = store.Apply(lock, batch, {}, "restoring history pruning");
      if (!ticket) return Fail(ticket.error());
      last = *ticket;
    } while (after != 0);
    leveldb::WriteBatch queue;
    for (uint64_t seq :
         {*plan.pruned_events.begin(), *plan.pruned_events.rbegin()}) {
      Erasure::Queue(queue, keys::Event(seq), now_micros);
    }
    auto ticket = store.Apply(lock, queue, {}, "restoring history pruning");
    if (!ticket) return Fail(ticket.error());
    lock.Unlock();
    CUSTOS_RETURN_IF_ERROR(store.WaitDurable(*ticket));
  }
  return erased;
}

}  // namespace custos::backup
