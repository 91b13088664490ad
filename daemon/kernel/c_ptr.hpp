// unique_ptr for the C libraries' objects (libnl, libnftnl), each released
// by its library's own function.
#pragma once

#include <memory>

namespace kvmnet::kernel {

template <auto Release>
struct CRelease {
    template <typename T>
    void operator()(T* object) const
    {
        Release(object);
    }
};

template <typename T, auto Release>
using CPtr = std::unique_ptr<T, CRelease<Release>>;

}  // namespace kvmnet::kernel
