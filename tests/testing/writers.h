// Concurrent writers for tests that kill servers under them: what they were
// told succeeded, and how much of it is missing afterwards.
#ifndef LATCHKEY_TESTS_TESTING_WRITERS_H_
#define LATCHKEY_TESTS_TESTING_WRITERS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "tests/testing/clients.h"

namespace latchkey::testing {

struct Acked {
  std::mutex mu;
  std::map<std::string, uint64_t> projects;   // id -> revision
  std::map<std::string, bool> keys;           // id -> revoked
  std::vector<std::string> key_ids_in_order;  // to find duplicates
  uint64_t count = 0;                         // calls answered OK
};

// Creates projects and API keys and revokes some of them through `target`
// until `stop`, recording every acknowledged change in `acked`.
inline void RunWriter(const std::string& target, const std::string& token, int seed, Acked& acked,
                      const std::atomic<bool>& stop) {
  Admin admin(target, token);
  std::mt19937 rng(seed);
  std::string project;
  std::vector<std::string> mine;
  while (!stop) {
    if (project.empty() || rng() % 10 == 0 || mine.size() >= 40) {
      v1::CreateProjectRequest req;
      req.set_name("writer");
      v1::CreateProjectResponse resp;
      if (!admin.Call(&v1::KeyAdmin::Stub::CreateProject, req, &resp).ok()) continue;
      project = resp.project().project_id();
      mine.clear();
      std::lock_guard<std::mutex> lock(acked.mu);
      acked.projects[project] = resp.revision();
      ++acked.count;
    } else if (!mine.empty() && rng() % 3 == 0) {
      const std::string id = mine[rng() % mine.size()];
      v1::Key key;
      if (!admin.Revoke(id, &key).ok()) continue;
      std::lock_guard<std::mutex> lock(acked.mu);
      acked.keys[id] = true;
      ++acked.count;
    } else {
      v1::GenerateApiKeyRequest req;
      req.set_project_id(project);
      req.set_name("k");
      v1::GenerateApiKeyResponse resp;
      if (!admin.Call(&v1::KeyAdmin::Stub::GenerateApiKey, req, &resp).ok()) continue;
      mine.push_back(resp.key().key_id());
      std::lock_guard<std::mutex> lock(acked.mu);
      acked.keys.emplace(resp.key().key_id(), false);
      acked.key_ids_in_order.push_back(resp.key().key_id());
      ++acked.count;
    }
  }
}

// Acknowledged projects and keys that `admin` does not find as acknowledged
// (missing, or a revoked key that is not revoked), each named.
inline std::vector<std::string> Lost(Admin& admin, Acked& acked) {
  std::lock_guard<std::mutex> lock(acked.mu);
  std::vector<std::string> lost;
  for (const auto& [id, revision] : acked.projects) {
    v1::GetProjectRequest req;
    req.set_project_id(id);
    v1::Project p;
    if (!admin.Call(&v1::KeyAdmin::Stub::GetProject, req, &p).ok()) lost.push_back(id);
  }
  for (const auto& [id, revoked] : acked.keys) {
    v1::GetKeyRequest req;
    req.set_key_id(id);
    v1::Key k;
    if (!admin.Call(&v1::KeyAdmin::Stub::GetKey, req, &k).ok() ||
        (revoked && k.state() != v1::KEY_STATE_REVOKED)) {
      lost.push_back(id);
    }
  }
  return lost;
}

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_WRITERS_H_
