// The runbook (docs/operations.md, "Runbook"), the README's tour (issue
// 13) and the IMI example's run against the server of `./dev run`
// (examples/imi/README.md, issue 14) run as written: every ```sh block of
// those sections, in order, with bash under `set -euo pipefail`, against a
// real custosd, with the build's custos, custosd and imi_demo first on
// PATH. A documented command that fails fails the test, naming the
// block's line.
//
// Markers in the Markdown (HTML comments) steer the run:
//   <!-- runbook-test: skip (why) -->   the next ```sh block is not run;
//   <!-- runbook-test: start-server --> start custosd (embedded defaults,
//                                       but erasures compacted inline);
//   <!-- runbook-test: store-records --> store records, as an authority;
//   <!-- runbook-test: stop-server -->  stop it.
// Host paths in the blocks (/etc/custos, /var/lib/custos,
// /var/backups/custos) are mapped to subdirectories of the test's
// directory, and `runuser -u custos -- CMD` runs as CMD. The blocks between two
// markers run as one script, so shell variables carry from block to block
// there.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/custos_tool_runner.h"
#include "tests/custosd_process.h"

namespace custos::testing {
namespace {

struct Step {
  enum Kind {
    kScript,
    kStartServer,
    kStoreRecords,
    kStopServer
  } kind = kScript;
  std::string script;  // kScript: the blocks, each announced on stderr.
  int blocks = 0;
};

struct Extracted {
  std::vector<Step> steps;
  int blocks_run = 0, blocks_skipped = 0;
};

// The ```sh blocks of `path` from the line `heading` to the next heading
// of the same level, as steps.
Extracted Extract(const std::string& path, const std::string& heading) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  const std::string level = heading.substr(0, heading.find(' ') + 1);
  Extracted out;
  auto script = [&]() -> Step& {
    if (out.steps.empty() || out.steps.back().kind != Step::kScript)
      out.steps.push_back(Step{});
    return out.steps.back();
  };
  bool inside = false, in_block = false, skip = false;
  std::string line, block;
  int number = 0, block_line = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!inside) {
      inside = line == heading;
      continue;
    }
    if (in_block) {
      if (line == "```") {
        in_block = false;
        if (skip) {
          ++out.blocks_skipped;
        } else {
          Step& step = script();
          // The path from the repository's root: two READMEs.
          step.script += std::string("echo '--- ") +
                         std::filesystem::path(path)
                             .lexically_relative(CUSTOS_SOURCE_DIR)
                             .string() +
                         ":" + std::to_string(block_line) + "' >&2\n" + block;
          ++step.blocks;
          ++out.blocks_run;
        }
        skip = false;
        block.clear();
      } else {
        block += line + "\n";
      }
      continue;
    }
    if (line.starts_with(level) && line != heading) break;
    if (line == "```sh") {
      in_block = true;
      block_line = number;
    } else if (line.starts_with("<!-- runbook-test: skip")) {
      skip = true;
    } else if (line == "<!-- runbook-test: start-server -->") {
      out.steps.push_back(Step{Step::kStartServer, "", 0});
    } else if (line == "<!-- runbook-test: store-records -->") {
      out.steps.push_back(Step{Step::kStoreRecords, "", 0});
    } else if (line == "<!-- runbook-test: stop-server -->") {
      out.steps.push_back(Step{Step::kStopServer, "", 0});
    } else if (line.starts_with("<!-- runbook-test")) {
      ADD_FAILURE() << path << ":" << number << ": unknown marker " << line;
    }
  }
  EXPECT_TRUE(inside) << path << " has no heading " << heading;
  EXPECT_FALSE(in_block) << path << ": a block is not closed";
  return out;
}

std::string Replace(std::string text, const std::string& from,
                    const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

std::string DirOf(const std::string& path) {
  return std::filesystem::path(path).parent_path().string();
}

class RunbookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"etc-custos", "var-lib-custos", "var-backups-custos"})
      std::filesystem::create_directory(dir() + "/" + d);
  }

  // Runs `script` with bash in dir(); a test failure showing its output
  // unless it exits 0.
  void RunScript(const std::string& script) {
    std::string mapped = Replace(script, "/etc/custos", dir() + "/etc-custos");
    mapped = Replace(mapped, "/var/lib/custos", dir() + "/var-lib-custos");
    mapped =
        Replace(mapped, "/var/backups/custos", dir() + "/var-backups-custos");
    // No custos user here: the command runs as the test's own.
    mapped = Replace(mapped, "runuser -u custos -- ", "");
    std::ofstream(dir() + "/step.sh", std::ios::trunc) << "set -euo pipefail\n"
                                                       << mapped;
    const std::string command =
        std::string("cd '") + dir() + "' && env -i HOME='" + dir() +
        "' PATH='" + DirOf(CUSTOS_PATH) + ":" + DirOf(CUSTOSD_PATH) + ":" +
        DirOf(IMI_DEMO_PATH) + ":/usr/bin:/bin' bash step.sh > step.out 2>&1";
    const int status = std::system(command.c_str());
    EXPECT_EQ(status, 0) << "a documented command failed; its output:\n"
                         << Slurp(dir() + "/step.out");
  }

  void Run(const Extracted& extracted, const std::function<void()>& after_start,
           const std::function<void()>& store_records) {
    for (const Step& step : extracted.steps) {
      switch (step.kind) {
        case Step::kScript:
          RunScript(step.script);
          break;
        case Step::kStartServer:
          // Inline, so that "An erasure request" verifies at once (on its
          // defaults custosd compacts within 360 s: docs/operations.md).
          custosd_.Start(CUSTOSD_PATH, {"--erasure-compaction-delay", "0"});
          after_start();
          break;
        case Step::kStoreRecords:
          store_records();
          break;
        case Step::kStopServer:
          EXPECT_EQ(custosd_.Stop(), 0);
          break;
      }
      if (HasFailure()) return;
    }
  }

  const std::string& dir() const { return custosd_.dir(); }
  CustosdProcess custosd_;
};

TEST_F(RunbookTest, TheRunbooksCommandsRunAsWritten) {
  const Extracted runbook = Extract(
      std::string(CUSTOS_SOURCE_DIR) + "/docs/operations.md", "## Runbook");
  // Every section with commands: a broken extractor must not pass empty.
  EXPECT_GE(runbook.blocks_run, 12);
  EXPECT_EQ(runbook.blocks_skipped, 3);
  auto start = [&] {
    std::filesystem::copy_file(dir() + "/custos-master.key",
                               dir() + "/etc-custos/master.key");
  };
  auto store = [&] {
    ToolRun user = RunTool(dir(), {"principal", "add", "authority-a", "--role",
                                   "user", "--out", "a.token"});
    ASSERT_EQ(user.exit, 0) << user.err;
    for (const char* who : {"anna@example.org\n", "ben@example.org\n"}) {
      ToolRun created =
          RunTool(dir(),
                  {"--principal", "authority-a", "--token-file", "a.token",
                   "record", "create", "--kind", "request", "--field", "name"},
                  std::string(who) + "someone\n");
      ASSERT_EQ(created.exit, 0) << created.err;
    }
  };
  int stores = 0;
  for (const Step& step : runbook.steps)
    stores += step.kind == Step::kStoreRecords;
  EXPECT_EQ(stores, 1);
  Run(runbook, start, store);
  // What the runbook did, seen from outside: the HTML report written,
  // the restored store verified (the last command).
  EXPECT_EQ(ModeOf(dir() + "/anna.html"), 0600u);
  EXPECT_TRUE(std::filesystem::exists(dir() + "/var-lib-custos/data.new"));
  const std::string out = Slurp(dir() + "/step.out");
  EXPECT_NE(out.find("chain ok: "), std::string::npos) << out;
  EXPECT_NE(out.find("erasure ok: "), std::string::npos) << out;
}

TEST_F(RunbookTest, TheReadmeTourRunsAsWritten) {
  const Extracted tour =
      Extract(std::string(CUSTOS_SOURCE_DIR) + "/README.md", "## A short tour");
  EXPECT_EQ(tour.blocks_run, 1);
  EXPECT_EQ(tour.blocks_skipped, 1);
  custosd_.Start(CUSTOSD_PATH);
  Run(
      tour, [] {}, [] {});
  // B read Anna's name; the admin's view shows no personal data.
  const std::string out = Slurp(dir() + "/step.out");
  EXPECT_NE(out.find("Anna"), std::string::npos) << out;
  EXPECT_EQ(out.find("Anna"), out.rfind("Anna")) << out;
}

// The present-day part of the IMI story against the production custosd on
// its embedded defaults (the server of `./dev run`), twice, as a person
// may run it: the second run takes over the first one's principals. Each
// run's imi_demo checks every view and exits 1 on a surprise, which fails
// the block.
TEST_F(RunbookTest, TheImiStoryRunsAgainstTheServerOfDevRun) {
  const Extracted section =
      Extract(std::string(CUSTOS_SOURCE_DIR) + "/examples/imi/README.md",
              "## Against the server of `./dev run`");
  EXPECT_EQ(section.blocks_run, 1);
  EXPECT_EQ(section.blocks_skipped, 2);
  custosd_.Start(CUSTOSD_PATH);
  for (int run = 1; run <= 2; ++run) {
    SCOPED_TRACE(std::string("run ") + std::to_string(run));
    Run(
        section, [] {}, [] {});
    if (HasFailure()) return;
    const std::string out = Slurp(dir() + "/step.out");
    EXPECT_NE(out.find("every party saw what the story says"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("UNEXPECTED"), std::string::npos) << out;
    // Lena Schmidt's report: the request and the answer of every run.
    const nlohmann::json lena = nlohmann::json::parse(
        Slurp(dir() + "/imi-reports/lena.schmidt@example.de.json"));
    EXPECT_EQ(lena.at("records").size(), 2u * run);
    for (const char* page :
         {"lena.schmidt@example.de", "jan.kowalski@example.fr",
          "max.huber@example.at"}) {
      EXPECT_NE(Slurp(dir() + "/imi-reports/" + page + ".html")
                    .find("<h1>Your personal data in IMI</h1>"),
                std::string::npos)
          << page;
      // Personal data: the owner's alone, as the tool writes reports.
      for (const char* ext : {".json", ".html"}) {
        EXPECT_EQ(ModeOf(dir() + "/imi-reports/" + page + ext), 0600u)
            << page << ext;
      }
    }
    EXPECT_EQ(ModeOf(dir() + "/imi-reports"), 0700u);
  }
}

}  // namespace
}  // namespace custos::testing
