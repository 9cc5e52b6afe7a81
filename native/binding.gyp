{
  "targets": [
    {
      "target_name": "ipcbox_shm",
      "sources": ["ipcbox_shm.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-cast-function-type"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lrt", "-lpthread"]
    }
  ]
}
