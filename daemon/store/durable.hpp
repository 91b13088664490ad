// Durable replacement of files, grouped and off the event loop (issue 12,
// item 4). A caller writes the new contents to a temporary file itself (so
// that ENOSPC, EDQUOT and EROFS are typed errors before anything changed);
// what is left - fsync of the file, rename over the old one, fsync of the
// directory - is queued here. Everything queued while one batch is being
// synced goes into the next batch, and within a batch a file replaced
// several times is synced and renamed once (its last contents) and each
// directory is synced once: N changes cost one directory fsync, not N.
//
// Without start_thread() every replace() runs at once on the caller's
// thread and throws on failure: the behaviour of store::write_atomic.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kvmnet::store {

// How a batch becomes durable; the unit tests count the calls. Both throw
// Error(Kernel) naming the path.
class Syncer {
public:
    virtual ~Syncer() = default;
    virtual void sync_file(int fd, const std::string& path) = 0;
    virtual void sync_directory(const std::string& dir) = 0;
};

class DurableWriter {
public:
    // Called on the thread that calls complete() (the event loop), with the
    // batch's error or nullptr.
    using Done = std::function<void(std::exception_ptr)>;
    // Called there for a file whose new contents a failed batch did not put
    // in place (its old contents are still there), before the batch's Done
    // calls, unless it was replaced again after that batch: that replace
    // decides what the file holds, and is reported the same way if it fails.
    using Lost = std::function<void(const std::string& path, std::exception_ptr error)>;

    explicit DurableWriter(Syncer* syncer = nullptr);  // nullptr: fsync(2)
    ~DurableWriter();                                  // syncs what is queued first
    DurableWriter(const DurableWriter&) = delete;
    DurableWriter& operator=(const DurableWriter&) = delete;

    // From now on batches are synced on a thread of this writer: replace()
    // only queues, submit() hands the queue over, completion_fd() becomes
    // readable when a batch is done and complete() then runs its Done calls.
    void start_thread();
    bool threaded() const { return thread_.joinable(); }
    int completion_fd() const { return event_fd_; }

    // `fd` is open on `tmp`, which holds the new contents of `path`, already
    // written; the writer owns fd from here on. Once `path` is durable the
    // files in `remove_after` are removed (a journal the new document holds)
    // and `then` runs, on the writer's thread (or at once when not threaded),
    // best effort (what it throws is dropped): not for contents replaced
    // again in the same batch, nor when the batch failed.
    using Then = std::function<void()>;
    void replace(int fd, std::string tmp, std::string path, std::vector<std::string> remove_after = {}, Then then = {});
    // As replace(), but `make` gives the new contents and `tmp` is written on
    // the writer's thread (at once when not threaded, throwing as replace()
    // does): serialising a large document is no work of the caller's. A
    // write (mode 0644) that fails there (a full disk) fails the batch like a failed
    // sync: `path` keeps its old contents and is reported lost. Not made at
    // all when the path is replaced again in the same batch.
    using Make = std::function<std::string()>;
    void replace_made(Make make, std::string tmp, std::string path, std::vector<std::string> remove_after = {},
                      Then then = {});
    // Calls done once everything replaced so far is durable (at once when
    // nothing is pending, or when not threaded).
    void when_durable(Done done);
    // Whether a replace of `path` is not durable yet.
    bool pending(const std::string& path) const;
    // Hands what is queued to the thread unless it is busy syncing (then it
    // goes when that batch is done). The event loop calls it after each turn.
    void submit();
    // On the event loop, when completion_fd() is readable: runs the Done
    // calls of the batches that are finished, and submits what is queued.
    void complete();
    // Blocks until everything replaced so far is durable. The Done calls
    // run at the next complete().
    void flush();
    // Who is told of lost replaces; only threaded: unthreaded, replace() throws.
    void on_lost(Lost lost) { lost_ = std::move(lost); }

private:
    struct Replace {
        int fd;  // -1 until `make` ran
        Make make;
        std::string tmp;
        std::string path;
        std::vector<std::string> remove_after;
        Then then;
    };
    struct Batch {
        std::vector<Replace> replaces;
        std::vector<Done> done;
        std::uint64_t last = 0;  // sequence number of its last replace
        std::exception_ptr error;
        std::vector<std::string> lost;  // paths left with their old contents by the error
    };

    void queue(Replace replace);
    void run_batch(Batch& batch);
    void thread_main();
    void hand_over();  // open_ to the thread's queue; mutex_ held

    Syncer* syncer_;
    std::unique_ptr<Syncer> own_syncer_;
    Lost lost_;
    int event_fd_ = -1;

    // The event loop's side.
    Batch open_;
    std::uint64_t sequence_ = 0;
    std::map<std::string, std::uint64_t> last_of_;
    // Callers of a failed batch whose every lost file a later replace
    // writes again, keyed by that replace's sequence number: told the
    // outcome of the batch that holds it.
    std::multimap<std::uint64_t, Done> carried_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Batch> queued_;    // handed over, not started
    bool busy_ = false;           // the thread is syncing a batch
    std::deque<Batch> finished_;  // synced, Done calls not run yet
    std::uint64_t durable_ = 0;   // sequence number of the last replace synced (or failed)
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace kvmnet::store
