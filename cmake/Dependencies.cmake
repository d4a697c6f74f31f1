# Third-party libraries, each found once here and exposed as an imported target.
#
# Two build shapes:
# - full (default): model, comm, data, trainer, benchmarks and every test;
# - model only (-DMONE_MODEL_ONLY=ON, for a GPU machine's image without MPI,
#   HDF5, Boost or libpng): model/ with its CUDA backend, the model and CUDA
#   tests, and the benchmarks that need nothing else. GoogleTest can then be
#   built from source (MONE_GTEST_SOURCE).
# A missing library stops the configure instead of quietly dropping test
# suites: CI must never pass by building less.
find_package(OpenMP REQUIRED COMPONENTS CXX)

# OpenBLAS through CBLAS, the OpenMP build: it shares libgomp's thread pool
# with our own loops. The pthread build keeps its own spinning threads, and
# with both on 2 cores a step ran 1.6x slower on 2 threads than on 1.
# Without it (a GPU machine's image) the CPU reference uses model/gemm.cpp's
# own loops: slow, but enough for the CUDA tests' small references.
# MONE_OPENBLAS=OFF takes that path on purpose, to test it where OpenBLAS is.
option(MONE_OPENBLAS "Use OpenBLAS when it is found (OFF: model/gemm.cpp's own loops)" ON)
if(MONE_OPENBLAS)
  find_path(CBLAS_INCLUDE_DIR cblas.h
    PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp
    NO_DEFAULT_PATH)
  find_library(OPENBLAS_LIBRARY NAMES openblas
    PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp
    NO_DEFAULT_PATH)
endif()
add_library(mone_blas INTERFACE)
if(MONE_OPENBLAS AND CBLAS_INCLUDE_DIR AND OPENBLAS_LIBRARY)
  target_include_directories(mone_blas INTERFACE ${CBLAS_INCLUDE_DIR})
  target_link_libraries(mone_blas INTERFACE ${OPENBLAS_LIBRARY})
  target_compile_definitions(mone_blas INTERFACE MONE_HAVE_OPENBLAS)
elseif(MONE_OPENBLAS)
  message(FATAL_ERROR "mone: OpenBLAS's OpenMP build (libopenblas-openmp-dev) not found; scripts/setup.sh installs it, "
                      "or configure with -DMONE_OPENBLAS=OFF for model/gemm.cpp's own, much slower GEMM loops")
endif()

find_package(Threads REQUIRED)

option(MONE_MODEL_ONLY "Build only model/ (CPU reference and CUDA backend), its tests and benchmarks" OFF)
find_package(HDF5 QUIET COMPONENTS C)
find_package(PNG QUIET)
find_package(Boost QUIET COMPONENTS program_options)
find_package(MPI QUIET COMPONENTS CXX)
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(TURBOJPEG QUIET IMPORTED_TARGET libturbojpeg)  # image folders: libturbojpeg0-dev
endif()
set(mone_missing)
foreach(package HDF5 PNG Boost MPI TURBOJPEG)
  if(NOT ${package}_FOUND)
    list(APPEND mone_missing ${package})
  endif()
endforeach()
if(mone_missing AND NOT MONE_MODEL_ONLY)
  message(FATAL_ERROR "mone: ${mone_missing} not found. scripts/setup.sh installs everything the full build needs; "
                      "-DMONE_MODEL_ONLY=ON builds model/ (and CUDA) with its tests alone.")
endif()

if(NOT MONE_MODEL_ONLY)
  add_library(mone_hdf5 INTERFACE)
  target_include_directories(mone_hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
  target_link_libraries(mone_hdf5 INTERFACE ${HDF5_C_LIBRARIES})
  target_compile_definitions(mone_hdf5 INTERFACE ${HDF5_C_DEFINITIONS})
  # mpirun for the distributed tests; as root (CI, containers) Open MPI needs
  # OMPI_ALLOW_RUN_AS_ROOT*, and --oversubscribe runs more ranks than cores.
  set(MONE_MPIRUN ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
endif()

# GoogleTest: the installed package, or built here from a source tree.
set(MONE_GTEST_SOURCE "" CACHE PATH "GoogleTest source tree to build (e.g. a copy of /usr/src/googletest)")
if(BUILD_TESTING)
  if(MONE_GTEST_SOURCE)
    set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    add_subdirectory(${MONE_GTEST_SOURCE} ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
    # googletest 1.11+ defines the GTest:: aliases itself; older trees do not.
    if(NOT TARGET GTest::gtest)
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
    endif()
  else()
    find_package(GTest REQUIRED)
  endif()
  include(GoogleTest)
endif()
