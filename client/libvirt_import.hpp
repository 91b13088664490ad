// Conversion of libvirt network XML (virsh net-dumpxml, /etc/libvirt/qemu/
// networks/*.xml) into kvmnet network documents. Pure: no bus, no kernel,
// no file system, so every mapping is unit-tested against golden documents
// (tests/data/libvirt). docs/libvirt.md lists what maps to what.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace kvmnet::libvirt {

// Something in the XML that did not become (exactly) a kvmnet field.
struct Note {
    unsigned line = 0;    // 1-based line of the element in the XML
    std::string what;     // "<dns><srv>", "<bridge macTableManager>"
    std::string message;  // "not supported by kvmnet (ignored)"
    // true: a setting with an effect in libvirt is lost or changed
    // (--strict refuses the file); false: only information, nothing the
    // network does is lost (a <uuid>, a delay the kernel would raise anyway).
    bool lossy = true;
};

struct Conversion {
    nlohmann::json document;  // the kvmnet document; meaningful only when error is empty
    std::vector<Note> notes;
    std::string error;  // why the file cannot become a kvmnet network
    unsigned error_line = 0;

    bool ok() const { return error.empty(); }
    bool lossy() const;
};

// `autostart`: whether libvirt's autostart link (autostart/NAME.xml beside
// the file) exists. The result is checked with model::parse_network, so a
// document kvmnet would refuse comes back as an error naming the field and,
// where it came from one, the XML line.
Conversion convert(std::string_view xml, bool autostart);

// "FILE:LINE: <what>: message" (the line left out when unknown).
std::string format_note(const std::string& file, const Note& note);
// "FILE:LINE: error: message"
std::string format_error(const std::string& file, const Conversion& conversion);

}  // namespace kvmnet::libvirt
