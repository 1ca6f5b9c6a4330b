// The envsync.* settings the C++ code reads, defined at load time (module.cpp).
#pragma once

namespace envsync::settings {

// envsync.batch_bytes, in kB: about how many bytes of rows one read of a comparison asks for.
extern int batch_kilobytes;

}  // namespace envsync::settings
