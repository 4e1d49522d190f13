// A real etcd cluster for tests: Debian's `etcd` binary, one process per
// member, data in a temp dir, client and peer ports on loopback.
#ifndef LATCHKEY_TESTS_TESTING_ETCD_CLUSTER_H_
#define LATCHKEY_TESTS_TESTING_ETCD_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "tests/testing/testing.h"

namespace latchkey::testing {

class EtcdCluster {
 public:
  // Starts `members` members and waits until the cluster answers.
  explicit EtcdCluster(int members = 3);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // "127.0.0.1:PORT,..." for --etcd-endpoints.
  std::string endpoints() const;
  std::string endpoint(int member) const;
  int size() const { return static_cast<int>(members_.size()); }

  // The member that leads now, or -1 when none answers as leader.
  int Leader() const;
  void Kill(int member);     // SIGKILL
  void Restart(int member);  // same name, data and ports
  // SIGSTOP: the member keeps its connections open and answers nothing, as a
  // hung process or a host that froze. Resume (SIGCONT) lets it go on.
  void Pause(int member);
  void Resume(int member);
  // Drops etcd's history before its current revision, through `member`
  // (physical: done when this returns); a watch from before then is refused.
  void Compact(int member);

  // One shared by every test in this process: three members start in a few
  // seconds, so tests share them and keep apart by key prefix.
  static EtcdCluster& Shared();

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::unique_ptr<Subprocess> process;
  };
  void Start(int member, bool initial);

  TempDir dir_;
  std::string initial_cluster_;
  std::vector<Member> members_;
};

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_ETCD_CLUSTER_H_
