{
  "targets": [
    {
      "target_name": "regvisor_kvm",
      "sources": ["native/kvm_ioctl.cc", "native/crc32c.cc", "native/sockio.cc", "native/pagesend.cc", "native/pagemap.cc"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra", "-Wno-cast-function-type"]
    }
  ]
}
