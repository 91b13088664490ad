#include "core/takeover_record.hpp"

#include "store/files.hpp"

namespace kvmnet::core {

void write_takeover_record(const std::string& path, const TakeoverRecord& record)
{
    store::write_replace(path, nlohmann::json(record).dump(2) + "\n");
}

std::optional<TakeoverRecord> read_takeover_record(const std::string& path, std::string& problem)
{
    const auto text = store::read_file(path);
    if (!text) return std::nullopt;
    try {
        return nlohmann::json::parse(*text).get<TakeoverRecord>();
    } catch (const std::exception& err) {
        problem = path + ": " + err.what();
        return std::nullopt;
    }
}

}  // namespace kvmnet::core
