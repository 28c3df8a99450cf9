# Written by hand (makemigrations would have taken in unrelated model changes in progress):
# only the help text that states the direction of priorities.

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('scheduling', '0003_max_concurrent_per_company'),
    ]

    operations = [
        migrations.AlterField(
            model_name='jobdefinition',
            name='priority',
            field=models.PositiveSmallIntegerField(default=5, help_text='0 to 9, 9 the most urgent (5 normal): a queued run of higher priority starts first', validators=[django.core.validators.MaxValueValidator(9)]),
        ),
    ]
