# Third-party libraries, each found once here and exposed as an imported target.
find_package(OpenMP REQUIRED COMPONENTS CXX)

# OpenBLAS through CBLAS, the OpenMP build: it shares libgomp's thread pool
# with our own loops. The pthread build keeps its own spinning threads, and
# with both on 2 cores a step ran 1.6x slower on 2 threads than on 1.
find_path(CBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp
  NO_DEFAULT_PATH REQUIRED)
find_library(OPENBLAS_LIBRARY NAMES openblas
  PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp
  NO_DEFAULT_PATH REQUIRED)
add_library(mone_blas INTERFACE)
target_include_directories(mone_blas INTERFACE ${CBLAS_INCLUDE_DIR})
target_link_libraries(mone_blas INTERFACE ${OPENBLAS_LIBRARY})

find_package(HDF5 REQUIRED COMPONENTS C)
add_library(mone_hdf5 INTERFACE)
target_include_directories(mone_hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
target_link_libraries(mone_hdf5 INTERFACE ${HDF5_C_LIBRARIES})
target_compile_definitions(mone_hdf5 INTERFACE ${HDF5_C_DEFINITIONS})

# libpng for `mone route`'s pictures.
find_package(PNG REQUIRED)

find_package(Boost REQUIRED COMPONENTS program_options)
find_package(GTest REQUIRED)
include(GoogleTest)

find_package(Threads REQUIRED)

find_package(MPI REQUIRED COMPONENTS CXX)
# mpirun for the distributed tests; as root (CI, containers) Open MPI needs
# OMPI_ALLOW_RUN_AS_ROOT*, and --oversubscribe runs more ranks than cores.
set(MONE_MPIRUN ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
