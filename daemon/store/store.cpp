// JSON persistence of the desired state.
#include "store/store.hpp"

#include "store/files.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

namespace kvmnet::store {

Store::Store(std::string state_dir) : dir_(std::move(state_dir) + "/networks") { make_directories(dir_, 0755); }

std::string Store::path_of(const std::string& name) const { return dir_ + "/" + name + ".json"; }

std::vector<model::Network> Store::load_all(std::vector<std::string>& problems) const
{
    std::vector<model::Network> result;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir_))
        if (entry.path().extension() == ".json") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
        try {
            auto text = read_file(file.string());
            if (!text) throw Error(ErrorKind::Kernel, "cannot read");
            model::Network n = model::parse_network(*text);
            if (n.name + ".json" != file.filename().string())
                throw Error(ErrorKind::InvalidArgument, "name '" + n.name + "' does not match the file name");
            result.push_back(std::move(n));
        } catch (const Error& e) {
            problems.push_back(file.string() + ": " + e.what());
        }
    }
    return result;
}

void Store::save(const model::Network& network) const
{
    write_atomic(path_of(network.name), model::to_json(network).dump(2) + "\n", 0644);
}

void Store::remove(const std::string& name) const { remove_file(path_of(name)); }

}  // namespace kvmnet::store
