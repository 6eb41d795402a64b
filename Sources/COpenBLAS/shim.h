#include <cblas.h>
// Not declared in every cblas.h; present in OpenBLAS.
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);
char *openblas_get_corename(void);
